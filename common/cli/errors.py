"""The one way a `cfmp` command stops on bad input: one line on stderr, exit code 2, no traceback.

An operator reading a failed start should see the key to fix, not a stack (DESIGN.md §4).
"""
from __future__ import annotations

from typing import IO, Any

import click

from common.settings import SettingsError


class OneLineError(click.ClickException):
    """Printed as `cfmp: <message>` on stderr; exits with 2 like click's own usage errors."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"cfmp: {self.format_message()}", err=True)


def configuration_error(exc: SettingsError) -> OneLineError:
    return OneLineError(f"configuration error: {exc}")
