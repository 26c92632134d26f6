"""`cfmp up`: the whole system on one machine with embedded defaults (DESIGN.md §9).

A Redis (`common.localredis`), the migrations, then every registered service, the gateway, the four
worker pools, beat and Flower as child processes of one supervisor. HTTP processes are ready when
they answer HTTP; pools and beat when they answer `celery inspect ping` (`liveness.py`). Ctrl-C or
SIGTERM stops everything and exits 0; a child that dies on its own stops everything too and exits 1,
naming it.
"""
from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import click

from common.cli.apps import registered_services
from common.cli.flower import flower_credentials
from common.cli.liveness import PingReadiness
from common.cli.supervisor import ChildExited, ChildSpec, NotReady, Output, Supervisor, http_ready
from common.cli.worker import BEAT_NODE
from common.localredis import LocalRedis, RedisUnavailable, ensure_redis, free_port
from common.logging import configure_logging
from common.serve import url_for_address
from common.settings import Settings
from common.tokens import issue_token

DEMO_BUYER = uuid.UUID("00000000-0000-4000-8000-000000000001")
DEMO_ADMIN = uuid.UUID("00000000-0000-4000-8000-0000000000ad")
TOKEN_TTL = 24 * 3600
HOST = "127.0.0.1"
CLI = (sys.executable, "-m", "common.cli")


class Shutdown(Exception):
    """Raised in the main thread by SIGTERM/SIGINT so every wait unwinds into the cleanup."""


def _shutdown(signum: int, frame: Any) -> None:
    raise Shutdown(signal.Signals(signum).name)


def resolve_ports(settings: Settings, names: list[str]) -> dict[str, int]:
    """Configured ports, with 0 replaced by a free one now: the gateway must know its upstreams'."""
    return {name: settings.ports[name] or free_port(HOST) for name in names}


def children(ports: Mapping[str, int], flower_auth: str, pings: PingReadiness) -> list[ChildSpec]:
    """Every process of the system, one entry each, HTTP first; all start at once."""
    from workers.pools import POOLS

    def bind(name: str) -> tuple[str, ...]:
        return ("--host", HOST, "--port", str(ports[name]))

    return [
        *(ChildSpec(name, (*CLI, "serve", name, *bind(name)), http_ready("/ready"))
          for name in registered_services()),
        ChildSpec("gateway", (*CLI, "gateway", *bind("gateway")), http_ready("/health")),
        *(ChildSpec(f"worker-{name}", (*CLI, "worker", name), pings.ready(pool.node_name))
          for name, pool in POOLS.items()),
        ChildSpec("beat", (*CLI, "beat"), pings.ready(BEAT_NODE)),
        # The credentials go by environment, never argv (`ps` shows argv to every local user).
        ChildSpec("flower", (*CLI, "flower", "--address", HOST, "--port", str(ports["flower"])),
                  http_ready("/healthcheck"), env={"FLOWER_BASIC_AUTH": flower_auth}),
    ]


def child_env(settings: Settings, redis: LocalRedis, ports: Mapping[str, int]) -> dict[str, str]:
    """The environment every child shares: ours, plus the broker we found and the resolved ports.

    Setting `<NAME>_PORT` for all of them makes the gateway's default upstream URLs point at the
    ports the services really got; an explicit ORDER_SERVICE_URL etc. still wins.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()})
    if settings.uses_embedded_broker:
        env["CELERY_BROKER_URL"] = redis.url
        if settings.result_backend == Settings.result_backend:
            env["CELERY_RESULT_BACKEND"] = redis.url.rsplit("/", 1)[0] + "/1"
    return env


def flower_login(flower_auth: str, generated: bool) -> str:
    """What the banner says about Flower's login: a generated password in full, a configured one not."""
    user, _, password = flower_auth.partition(":")
    if generated:
        return f"user {user}, password {password}   (generated; set FLOWER_BASIC_AUTH to choose)"
    return f"user {user}, password from FLOWER_BASIC_AUTH"


def banner(settings: Settings, redis: LocalRedis, ports: Mapping[str, int], flower_auth: str,
           generated: bool) -> list[str]:
    from workers.pools import POOLS

    gateway = url_for_address(HOST, ports["gateway"])
    buyer = issue_token(settings, DEMO_BUYER, role="user", ttl=TOKEN_TTL)
    admin = issue_token(settings, DEMO_ADMIN, role="admin", ttl=TOKEN_TTL)
    broker = f"{redis.url}{' (private, stopped with cfmp up)' if redis.private else ''}"
    return [
        "",
        "cfmp is up. Press Ctrl-C to stop everything.",
        f"  {'gateway':<14} {gateway}",
        *(f"  {name:<14} {url_for_address(HOST, ports[name])}" for name in registered_services()),
        f"  {'broker':<14} {broker}",
        f"  {'worker pools':<14} {', '.join(POOLS)}; beat (one)",
        f"  {'flower':<14} {url_for_address(HOST, ports['flower'])}   {flower_login(flower_auth, generated)}",
        f"  {'demo buyer':<14} {DEMO_BUYER}",
        f"  {'buyer token':<14} {buyer}",
        f"  {'admin token':<14} {admin}   (user {DEMO_ADMIN})",
        "  try:",
        f"    export TOKEN={buyer}",
        f'    curl -H "Authorization: Bearer $TOKEN" {gateway}/api/orders/',
        "",
    ]


def run_system(settings: Settings, output: Output, ready_timeout: float, stack: list[Any],
               flower: tuple[str, bool]) -> None:
    """Everything between the first and the last signal; `stack` collects what must be stopped."""
    flower_auth, generated = flower
    output.line("up", "looking for a Redis")
    redis = ensure_redis(settings)
    stack.append(redis)
    output.line("up", f"broker {redis.url}")
    output.line("up", "applying migrations")
    from models import migrate

    migrate.upgrade(settings)
    ports = resolve_ports(settings, [*registered_services(), "gateway", "flower"])
    env = child_env(settings, redis, ports)
    pings = PingReadiness(Settings.from_env(env))  # the broker and key prefix the children will use
    stack.append(pings)
    supervisor = Supervisor(children(ports, flower_auth, pings), output)
    stack.append(supervisor)
    supervisor.start(env)
    supervisor.wait_ready(ready_timeout)
    output.block(banner(settings, redis, ports, flower_auth, generated))
    supervisor.watch()


@click.command()
@click.option("--ready-timeout", type=click.FloatRange(min=1), default=90.0, show_default=True,
              help="Seconds to wait for every process to answer its readiness check.")
@click.pass_obj
def up(settings: Settings, ready_timeout: float) -> None:
    """Run Redis, migrations, services, gateway, worker pools, beat and Flower; Ctrl-C stops it all."""
    flower = flower_credentials(settings)  # before anything starts: outside development it may refuse
    configure_logging("up", settings)
    output = Output(sys.stdout)
    stack: list[Any] = []  # a LocalRedis, the pinger, the Supervisor: stopped in reverse order
    code = 0
    previous = {sig: signal.signal(sig, _shutdown) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        run_system(settings, output, ready_timeout, stack, flower)
    except Shutdown as exc:
        output.line("up", f"{exc}: stopping everything")
    except (ChildExited, NotReady, RedisUnavailable) as exc:
        click.echo(f"cfmp up: {exc}; stopping everything", err=True)
        code = 1
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        for item in reversed(stack):
            item.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    output.line("up", "stopped")
    sys.exit(code)
