"""`cfmp token`: a signed development token, the same kind the gateway and services verify."""
from __future__ import annotations

import uuid

import click

from common.settings import Settings
from common.tokens import ROLES, issue_token


@click.command()
@click.option("--user", "user_uuid", type=click.UUID, required=True,
              help="The user's UUID (the `sub` claim).")
@click.option("--role", type=click.Choice(ROLES), default="user", show_default=True)
@click.option("--ttl", type=click.IntRange(min=1), default=3600, show_default=True,
              help="Lifetime in seconds.")
@click.option("--email", default=None, help="Optional `email` claim.")
@click.pass_obj
def token(settings: Settings, user_uuid: uuid.UUID, role: str, ttl: int, email: str | None) -> None:
    """Print a JWT for USER signed with JWT_SECRET."""
    click.echo(issue_token(settings, user_uuid, role=role, ttl=ttl, email=email))
