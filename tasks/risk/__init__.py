"""The risk domain: rule evaluation and scoring (plain functions) and the risk-pool tasks."""
