"""`cfmp status`: every service and worker pool, its health and address, and the depth of each queue.

With NACOS_SERVER set the instances come from Nacos: each registered service and pool (DESIGN.md
§3), healthy or not, with the address it registered. Without it, the local view: each service's
configured upstream URLs asked for `/health`, and the worker nodes that answer a Celery broadcast
(`inspect active_queues`), matched to their pool by node name or queues. Queue depths are read from
the broker (Redis) either way. Exit code 0 when every service and pool has a healthy instance, 1
otherwise, so scripts can use it as a check.
"""
from __future__ import annotations

import http.client
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from common.cli.apps import registered_services
from common.cli.errors import OneLineError
from common.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Unavailable(OneLineError):
    """Nacos or the broker cannot be asked: nothing to show."""

    exit_code = 1


@dataclass(frozen=True)
class Row:
    name: str  # the Nacos service name
    health: str  # healthy | unhealthy | down | none
    address: str = "-"
    detail: str = ""
    queues: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.health == "healthy"


def expected() -> list[tuple[str, tuple[str, ...]]]:
    """(Nacos name, queues) of every service and pool, services first."""
    from common.registry import SERVICE_NAMES
    from workers.pools import POOLS

    return ([(SERVICE_NAMES[name], ()) for name in registered_services()]
            + [(pool.service, pool.queues) for pool in POOLS.values()])


def nacos_rows(settings: Settings) -> list[Row]:
    from common.registry import Registry, RegistryError

    registry = Registry(settings, timeout=3.0)
    rows = []
    for name, queues in expected():
        try:
            instances = registry.instances(name)
        except RegistryError as exc:
            raise Unavailable(f"cannot read Nacos: {exc}") from None
        for instance in sorted(instances, key=lambda i: (i.ip, i.port)):
            meta = instance.metadata
            detail = " ".join(f"{key}={meta[key]}" for key in ("celery_hostname", "pool_type", "concurrency", "version")
                              if key in meta)
            rows.append(Row(name, "healthy" if instance.healthy else "unhealthy", instance.address, detail, queues))
        if not instances:
            rows.append(Row(name, "none", queues=queues))
    return rows


def _http_health(url: str, timeout: float) -> bool:
    try:
        with _DIRECT.open(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except urllib.error.HTTPError as error:
        error.close()
        return False
    except (OSError, http.client.HTTPException):
        return False


def local_rows(settings: Settings, celery: Celery, timeout: float) -> list[Row]:
    from common.registry import SERVICE_NAMES
    from workers.pools import POOLS

    rows = []
    for service in registered_services():
        for url in (part.strip().rstrip("/") for part in settings.upstreams[service].split(",") if part.strip()):
            health = "healthy" if _http_health(url, timeout) else "down"
            rows.append(Row(SERVICE_NAMES[service], health, url.split("://", 1)[-1]))
    try:
        nodes = celery.control.inspect(timeout=timeout).active_queues() or {}
    except OSError as exc:
        raise Unavailable(f"cannot reach the broker: {exc}") from None
    for pool in POOLS.values():
        found = sorted(node for node, queues in nodes.items()
                       if node.partition("@")[0] == pool.name or {q["name"] for q in queues} == set(pool.queues))
        rows.extend(Row(pool.service, "healthy", node, "answers the broker", pool.queues) for node in found)
        if not found:
            rows.append(Row(pool.service, "none", queues=pool.queues))
    return rows


def queue_depths(celery: Celery, queues: Iterable[str]) -> dict[str, int | None]:
    """Messages waiting in each queue (None: could not be read)."""
    depths: dict[str, int | None] = {}
    try:
        with celery.connection_for_read() as connection:
            channel = connection.default_channel
            for queue in queues:
                # Not passive: Redis drops an empty list, so a passive declare says 404 for an idle
                # queue. Declaring writes nothing on Redis; it counts the messages (all priorities).
                depths[queue] = channel.queue_declare(queue=queue, durable=True, auto_delete=False).message_count
    except Exception:  # noqa: BLE001 (a broker away, a missing queue: the column says "?")
        depths.update({queue: None for queue in queues if queue not in depths})
    return depths


def render(rows: list[Row], depths: Mapping[str, int | None]) -> list[str]:
    def waiting(row: Row) -> str:
        return ", ".join(f"{q}: {'?' if depths.get(q) is None else depths[q]} waiting" for q in row.queues)

    table = [("NAME", "HEALTH", "ADDRESS", "QUEUES", "DETAILS")]
    table += [(row.name, row.health, row.address, waiting(row) or "-", row.detail) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(line, widths)), line[4]]).rstrip()
            for line in table]


def _celery(settings: Settings) -> Celery:
    from celery import Celery

    import celeryconfig

    app = Celery("cfmp-status", set_as_current=False)
    config = celeryconfig.from_settings(settings)
    config["broker_connection_retry_on_startup"] = False
    config["broker_transport_options"] = {**config["broker_transport_options"], "max_retries": 1}
    app.config_from_object(config)
    return app


@click.command()
@click.option("--timeout", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds to wait for each service's /health and for workers to answer.")
@click.pass_obj
def status(settings: Settings, timeout: float) -> None:
    """Show every service and worker pool: health, address, queue depth (from Nacos when set)."""
    celery = _celery(settings)
    try:
        rows = nacos_rows(settings) if settings.nacos_server else local_rows(settings, celery, timeout)
        depths = queue_depths(celery, sorted({q for row in rows for q in row.queues}))
    finally:
        celery.close()
    source = f"Nacos at {settings.nacos_server}" if settings.nacos_server else "local processes (NACOS_SERVER unset)"
    click.echo(f"from {source}")
    for line in render(rows, depths):
        click.echo(line)
    missing = sorted({row.name for row in rows} - {row.name for row in rows if row.ok})
    if missing:
        click.echo(f"not healthy: {', '.join(missing)}")
    sys.exit(1 if missing else 0)
