"""The notifications domain: templates, channels, delivery bookkeeping, the fan-out canvas and tasks."""
