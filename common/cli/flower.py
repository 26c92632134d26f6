"""`cfmp flower`: Flower, the operators' view of the pools and queues, behind basic auth.

Flower's API is open to anyone who can reach it unless auth is configured, and its control
operations can shut workers down (reference §2.8), so: basic auth always (`FLOWER_BASIC_AUTH`; in
development a generated one, printed once), read-only unless asked otherwise, loopback unless told,
and bounded in-memory state with nothing persisted (Flower's state is a view, never the truth).

The credentials reach Flower through the environment variable it reads itself, not through argv,
where every local user could read them in `ps`. Like `cfmp serve`, it prints
`listening on http://HOST:PORT` once it answers, which is how `cfmp up` and tests find it.
"""
from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

import click

from common.cli.errors import OneLineError
from common.cli.worker import run_celery
from common.localredis import free_port
from common.logging import configure_logging
from common.serve import announce, url_for_address
from common.settings import Settings

# Flower keeps every task and worker it has seen in memory; its default of 100000 tasks is what
# grew it into OOM kills (flower#1305). Offline workers disappear from the view after 5 minutes.
MEMORY_LIMITS = ("--max_tasks=10000", "--purge_offline_workers=300", "--persistent=False")
GENERATED_USER = "admin"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class CannotListen(OneLineError):
    exit_code = 1  # like `cfmp serve`: the configuration is fine, the machine is not


def flower_credentials(settings: Settings) -> tuple[str, bool]:
    """`user:password` for Flower, and whether it was generated (development only) just now."""
    if settings.flower_basic_auth:
        return settings.flower_basic_auth, False
    if settings.env != "development":
        raise OneLineError(f"FLOWER_BASIC_AUTH: required when ENV={settings.env} (user:password)")
    return f"{GENERATED_USER}:{secrets.token_urlsafe(12)}", True


def flower_argv(address: str, port: int, read_only: bool, loglevel: str = "INFO", url_prefix: str = "") -> list[str]:
    """Flower's own (tornado-style) options; `--logging` because tornado sets the root level."""
    prefix = [f"--url_prefix={url_prefix}"] if url_prefix else []
    return ["flower", f"--address={address}", f"--port={port}", f"--read_only={read_only}",
            f"--logging={loglevel.lower()}", *prefix, *MEMORY_LIMITS]


def _answers(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=1) as response:
            return response.status == 200
    except urllib.error.HTTPError as error:  # someone answers, but not Flower's healthcheck
        error.close()
        return False
    except OSError:  # refused, reset, timed out (URLError is an OSError)
        return False


def ensure_can_listen(address: str, port: int) -> None:
    """Fail in one line when the port is taken, instead of Flower's traceback from deep in tornado.

    A probe, so another process could still take the port in between; then the traceback it is.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tornado binds
            probe.bind((address, port))
    except OSError as exc:
        raise CannotListen(f"cannot listen on {address or '*'}:{port}: {exc.strerror or exc}") from None


def announce_when_listening(address: str, port: int, url_prefix: str = "") -> threading.Thread:
    """Print the `listening on` line once /healthcheck answers, as `cfmp serve` does once bound:
    Flower itself only logs a banner. Polls for as long as the process lives (a daemon thread)."""
    host = "127.0.0.1" if address in ("", "0.0.0.0") else address
    healthcheck = f"/{url_prefix}/healthcheck" if url_prefix else "/healthcheck"

    def wait() -> None:
        while not _answers(url_for_address(host, port) + healthcheck):
            time.sleep(0.1)
        announce("flower", host, port)

    thread = threading.Thread(target=wait, name="announce-flower", daemon=True)
    thread.start()
    return thread


@click.command()
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port to bind; default FLOWER_PORT (5555), 0 picks a free one.")
@click.option("--read-only/--allow-control", default=True, show_default=True,
              help="Disable (default) or allow the control operations: shutdown, pool resize, revoke...")
@click.pass_obj
def flower(settings: Settings, address: str, port: int | None, read_only: bool) -> None:
    """Run Flower over the pools' events, with basic auth (FLOWER_BASIC_AUTH)."""
    credentials, generated = flower_credentials(settings)
    if generated:
        user, _, password = credentials.partition(":")
        click.echo(f"flower login (generated, set FLOWER_BASIC_AUTH to choose): {user} {password}")
    port = settings.ports["flower"] if port is None else port
    port = port or free_port(address or "127.0.0.1")
    ensure_can_listen(address, port)
    os.environ["FLOWER_BASIC_AUTH"] = credentials
    # Flower parses tornado's options; our handlers must be in place first, or tornado adds its own.
    configure_logging("flower", settings)
    announce_when_listening(address, port, settings.flower_url_prefix)
    argv = flower_argv(address, port, read_only, settings.log_level, settings.flower_url_prefix)
    sys.exit(run_celery("flower", argv))
