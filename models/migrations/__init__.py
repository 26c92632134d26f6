"""Alembic environments, one per service bind (`models/migrations/<bind>/`)."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import context as alembic_context


def bind_tables_only(metadata: sa.MetaData):
    """Autogenerate filter: binds may share one database (tests on MariaDB), so compare only the
    tables this bind owns."""

    def include_name(name, type_, parent_names) -> bool:
        return type_ != "table" or name in metadata.tables

    return include_name


def run_migrations(context=alembic_context) -> None:
    """Body of every bind's env.py: migrate the URL and bind the caller put in config.attributes."""
    import models  # noqa: F401  (registers every table in db.metadatas)
    from models.base import db

    config = context.config
    bind = config.attributes["bind"]
    url = config.attributes["url"]
    metadata = db.metadatas[bind]
    options = dict(
        target_metadata=metadata,
        include_name=bind_tables_only(metadata),
        version_table=f"alembic_version_{bind}",
        render_as_batch=url.startswith("sqlite"),
        compare_type=True,
    )
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
