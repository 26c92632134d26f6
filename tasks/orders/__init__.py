"""The orders domain: actions (plain functions) and, from the Celery spine on, its tasks."""
