"""`cfmp`: the one command line for running, migrating and poking at the system (DESIGN.md §3).

The group reads the settings once, before any command runs, so every command fails the same way on
bad configuration: one line naming the key, exit code 2 (see `errors.py`). Each command lives in its
own module and imports heavy things (apps, Alembic) only when it runs.
"""
from __future__ import annotations

from typing import Any

import click

from common.cli.db import db
from common.cli.dead_letters import dead_letters
from common.cli.errors import configuration_error
from common.cli.flower import flower
from common.cli.servers import gateway, serve
from common.cli.status import status
from common.cli.tokens import token
from common.cli.up import up
from common.cli.worker import beat, worker
from common.settings import Settings, SettingsError


class CfmpGroup(click.Group):
    """Turns a SettingsError raised anywhere in a command (an app factory, say) into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            raise configuration_error(exc) from None


@click.group(cls=CfmpGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """CFMP order, payment and notification backend."""
    ctx.obj = Settings.from_env()


for command in (serve, gateway, worker, beat, flower, db, dead_letters, token, up, status):
    main.add_command(command)
