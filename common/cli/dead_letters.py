"""`cfmp dead-letters`: the tasks that failed for good, newest first, as aligned text.

Flower shows what it saw live and forgets it (reference §5.2); the dead letters are in each
domain's database and survive restarts, so this is the operators' list of what needs a human.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import click

from common.cli.errors import OneLineError
from common.settings import Settings

COLUMNS = ("failed at (UTC)", "task", "task id", "retries", "error")
ERROR_WIDTH = 200


def _when(moment: dt.datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _one_line(text: str, width: int = ERROR_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def render(letters: Iterable[Any]) -> list[str]:
    """One line per dead letter under a header, every column but the last padded to its widest cell."""
    rows: list[Sequence[str]] = [COLUMNS, *(
        (_when(letter.failed_at), letter.task_name, letter.task_id, str(letter.retries),
         _one_line(letter.error))
        for letter in letters
    )]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[-1]]).rstrip()
            for row in rows]


@click.command("dead-letters")
@click.option("--domain", default="orders", show_default=True,
              help="Which domain's dead letters (the task-name prefix).")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True, help="At most this many.")
@click.pass_obj
def dead_letters(settings: Settings, domain: str, limit: int) -> None:
    """List the tasks that failed for good (newest first), next to what Flower shows live."""
    from tasks import dead_letters as store
    from workers import create_worker_app

    if domain not in store.TABLES:
        raise OneLineError(f"unknown domain {domain!r} (available: {', '.join(store.TABLES)})")
    with create_worker_app(settings).app_context():
        letters = store.listing(task_prefix=domain, limit=limit)
        if not letters:
            click.echo(f"no dead letters in {domain}")
            return
        click.echo("\n".join(render(letters)))
