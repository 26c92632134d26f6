"""Schema management through Alembic: `cfmp db upgrade` and the test suite call `upgrade()`."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from common.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
# The binds that have migrations so far, in the order they are applied.
BINDS = tuple(p.name for p in sorted(MIGRATIONS.iterdir()) if (p / "env.py").is_file())


def alembic_config(bind: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS / bind))
    config.attributes["bind"] = bind
    config.attributes["url"] = url
    return config


def ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def upgrade(settings: Settings, binds: tuple[str, ...] = BINDS, revision: str = "head") -> None:
    for bind in binds:
        url = settings.database_urls[bind]
        ensure_sqlite_dir(url)
        command.upgrade(alembic_config(bind, url), revision)


def downgrade(settings: Settings, binds: tuple[str, ...] = BINDS, revision: str = "base") -> None:
    for bind in reversed(binds):
        command.downgrade(alembic_config(bind, settings.database_urls[bind]), revision)
