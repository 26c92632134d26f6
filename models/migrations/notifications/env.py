from models.migrations import run_migrations

run_migrations()
