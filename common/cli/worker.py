"""`cfmp worker POOL` and `cfmp beat`: the Celery processes, each started through Celery's own CLI.

Both hand an argument list to `app.start()` (what `celery -A workers ...` runs), so every Celery
option behaves as documented; what this module adds is the pool defaults (`workers.pools`), state
files under VAR_DIR, and `CFMP_PROCESS`, which `workers.signals` reads when Celery sets up logging to
pick the log file (`<LOG_DIR>/worker-orders.log`, `beat.log`). Nothing from `workers` is imported
before a command runs: importing the package reads the settings and loads Flask and the task modules,
which would make every `cfmp` command slow and turn a configuration error into a traceback.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from common.cli.errors import OneLineError
from common.settings import Settings

BEAT_NODE = "beat@%h"


def run_celery(process: str, argv: Sequence[str]) -> int:
    """Run one `celery` subcommand in this process under the log name `process`; its exit code.

    This is `app.start(argv)` except for the exit code. Under click 8.2+, a command that ends with
    `ctx.exit(code)` in non-standalone mode makes `main()` return the code, and `app.start` drops
    it: a worker that stopped on an unrecoverable error (a prefork child killed while the pool was
    starting, a held pid file) exited 0, so `restart: on-failure` would never restart it.
    """
    os.environ["CFMP_PROCESS"] = process
    from celery.bin.celery import celery as celery_cli

    from workers.celery import app

    celery_cli.params[0].default = app  # what `app.start` does: the `--app` option's default
    try:
        code = celery_cli.main(args=list(argv), standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    finally:
        celery_cli.params[0].default = None
    return exit_status(code)


def exit_status(code: object) -> int:
    """A process exit status from what a Celery command ended with: an int, nothing (success), or a
    message (Celery stops a worker with `SystemExit("ERROR: ...")`, already printed: a failure)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def beat_argv(settings: Settings, loglevel: str = "INFO") -> list[str]:
    """Beat with its schedule state and its pid lock under VAR_DIR.

    The pid file makes a second beat on the same VAR_DIR refuse to start: two schedulers would send
    every periodic task twice (reference §2.6). Beat answers `celery inspect ping` as `beat@<host>`
    (and stops answering when its scheduler loop stalls), so it can be health-checked like a pool.
    """
    var_dir = Path(settings.var_dir).resolve()
    return [
        "beat", "--schedule", str(var_dir / "celerybeat-schedule"),
        "--pidfile", str(var_dir / "celerybeat.pid"),
        "--hostname", BEAT_NODE, "--enable-remote-control", "--loglevel", loglevel,
    ]


def _known_pool(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from workers.pools import POOLS

    if value not in POOLS:
        raise OneLineError(f"unknown pool {value!r} (available: {', '.join(POOLS)})")
    return value


def _known_pool_type(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from workers.pools import POOL_TYPES

    if value is not None and value not in POOL_TYPES:
        raise OneLineError(f"unknown execution pool {value!r} (available: {', '.join(POOL_TYPES)})")
    return value


@click.command()
@click.argument("pool", callback=_known_pool)
@click.option("--concurrency", "-c", type=click.IntRange(1), default=None,
              help="Processes or threads; default per pool (workers/pools.py).")
@click.option("--pool", "pool_type", metavar="prefork|threads|solo", default=None, callback=_known_pool_type,
              help="Celery execution pool; default per pool (workers/pools.py).")
@click.pass_obj
def worker(settings: Settings, pool: str, concurrency: int | None, pool_type: str | None) -> None:
    """Run the worker of POOL (orders, payments, risk, notifications), consuming its queue."""
    from workers.pools import POOLS, worker_argv

    argv = worker_argv(POOLS[pool], concurrency, pool_type, loglevel=settings.log_level)
    sys.exit(run_celery(f"worker-{pool}", argv))


@click.command()
@click.pass_obj
def beat(settings: Settings) -> None:
    """Run the one scheduler of periodic tasks (sweeps, outbox relay); never run two."""
    Path(settings.var_dir).mkdir(parents=True, exist_ok=True)
    sys.exit(run_celery("beat", beat_argv(settings, loglevel=settings.log_level)))
