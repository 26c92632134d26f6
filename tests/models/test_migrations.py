"""The Alembic migrations build exactly the models' schema, up and down, on SQLite and MariaDB."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
import sqlalchemy as sa

import models  # noqa: F401
from models.base import db
from models.migrate import BINDS, downgrade, upgrade
from models.migrations import bind_tables_only


def _diff(url: str, bind: str):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        opts = {"compare_type": True, "include_name": bind_tables_only(db.metadatas[bind])}
        context = MigrationContext.configure(connection, opts=opts)
        diff = compare_metadata(context, db.metadatas[bind])
    engine.dispose()
    return diff


def test_models_match_migrations(settings):
    for bind in BINDS:
        assert _diff(settings.database_urls[bind], bind) == [], bind


def test_down_and_up_again(settings):
    downgrade(settings)
    for bind in BINDS:
        engine = sa.create_engine(settings.database_urls[bind], poolclass=sa.pool.NullPool)
        tables = set(sa.inspect(engine).get_table_names())
        engine.dispose()
        assert not tables & set(db.metadatas[bind].tables), tables
    upgrade(settings)
    for bind in BINDS:
        assert _diff(settings.database_urls[bind], bind) == []
