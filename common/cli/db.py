"""`cfmp db upgrade|downgrade`: every service's schema through Alembic (models.migrate)."""
from __future__ import annotations

import click
from sqlalchemy.engine import make_url

from common.logging import configure_logging
from common.settings import Settings


def _describe(settings: Settings, binds: tuple[str, ...]) -> str:
    def safe(url: str) -> str:
        return make_url(url).render_as_string(hide_password=True)

    return ", ".join(f"{bind} ({safe(settings.database_urls[bind])})" for bind in binds)


@click.group()
def db() -> None:
    """Database schema management."""


@db.command()
@click.pass_obj
def upgrade(settings: Settings) -> None:
    """Apply every pending migration of every service's database."""
    from models import migrate

    configure_logging("migrate", settings)
    migrate.upgrade(settings)
    click.echo(f"upgraded to head: {_describe(settings, migrate.BINDS)}")


@db.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def downgrade(settings: Settings, yes: bool) -> None:
    """Revert every migration: drops every table of every service."""
    from models import migrate

    if not yes:
        click.confirm(f"Drop every table of {_describe(settings, migrate.BINDS)}?", abort=True)
    configure_logging("migrate", settings)
    migrate.downgrade(settings)
    click.echo(f"downgraded to base: {_describe(settings, migrate.BINDS)}")
