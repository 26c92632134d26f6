"""Where a service's instances are: the static upstream map, or Nacos when NACOS_SERVER is set.

The proxy asks `instances(service)` per request and walks the answer in round-robin order, failing
over to the next instance when one refuses the connection. `NacosDiscovery` answers from a cache of
each service's healthy instances (`routes.NACOS_SERVICE_NAMES`), refreshed every `refresh` seconds
by a background thread, in smooth weighted round-robin order (an instance of weight 2 comes up twice
as often as one of weight 1, interleaved; weight 0 gets nothing). When Nacos cannot be reached the
last good list stays in use; an empty answer for a service that had instances is trusted only once
it persists for `empty_grace` seconds, because a Nacos that just restarted knows nobody until the
instances' next heartbeat re-registers them.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from urllib3.util import parse_url

from common.registry import Instance, Registry, RegistryError
from common.settings import Settings
from gateway.routes import NACOS_SERVICE_NAMES

log = logging.getLogger("gateway.discovery")
REFRESH = 5.0  # seconds between refreshes of the cache
EMPTY_GRACE = 30.0  # seconds an empty answer must persist before a known list is dropped (ipDeleteTimeout)
MAX_SHARE = 100  # largest weight ratio honoured between two instances of one service


class Discovery(Protocol):
    def instances(self, service: str) -> list[str]:
        """Base URLs (`http://host:port`, no trailing slash) of the service; empty when none is known."""
        ...


def _base_url(service: str, raw: str) -> str:
    """Validate one configured instance URL; a bad one must stop the gateway at start, not per request."""
    url = parse_url(raw.strip())
    if url.scheme not in ("http", "https") or not url.host or url.query or url.fragment:
        raise ValueError(f"upstream URL for {service!r} must be http(s)://host[:port][/path], got {raw!r}")
    return url.url.rstrip("/")


class StaticDiscovery:
    """Instances from `settings.upstreams`; a value may list several URLs separated by commas."""

    def __init__(self, settings: Settings):
        self._instances: dict[str, tuple[str, ...]] = {
            service: tuple(_base_url(service, part) for part in value.split(",") if part.strip())
            for service, value in settings.upstreams.items()
        }

    def instances(self, service: str) -> list[str]:
        return list(self._instances.get(service, ()))


def instance_url(instance: Instance) -> str:
    host = f"[{instance.ip}]" if ":" in instance.ip else instance.ip
    return f"http://{host}:{instance.port}"


def weighted_order(instances: Sequence[Instance]) -> list[str]:
    """One round of smooth weighted round robin (nginx's): each instance as often as its weight,
    spread out. Weights are scaled so the lightest counts 1; order is stable (sorted by address)."""
    weighted = sorted((i for i in instances if i.weight > 0), key=lambda i: (i.ip, i.port))
    if not weighted:
        return []
    lightest = min(i.weight for i in weighted)
    shares = [max(1, min(MAX_SHARE, round(i.weight / lightest))) for i in weighted]
    current = [0] * len(weighted)
    order = []
    for _ in range(sum(shares)):
        for index, share in enumerate(shares):
            current[index] += share
        best = max(range(len(weighted)), key=lambda index: current[index])
        current[best] -= sum(shares)
        order.append(instance_url(weighted[best]))
    return order


class NacosDiscovery:
    """Healthy instances from Nacos, cached and refreshed in the background; `close()` stops it."""

    def __init__(self, settings: Settings, registry: Registry | None = None, refresh: float = REFRESH,
                 empty_grace: float = EMPTY_GRACE, clock: Callable[[], float] = time.monotonic):
        self.registry = registry or Registry(settings, timeout=2.0)
        self.refresh = refresh
        self.empty_grace = empty_grace
        self.clock = clock
        self._lists: dict[str, list[str]] = {}  # service key -> weighted order
        self._empty_since: dict[str, float] = {}
        self._reachable = True
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def instances(self, service: str) -> list[str]:
        self._ensure_refresher()
        with self._lock:
            known = self._lists.get(service)
        if known is None and service in NACOS_SERVICE_NAMES:  # first request for it: ask now
            self._refresh_one(service)
            with self._lock:
                known = self._lists.get(service)
        return list(known or ())

    def _ensure_refresher(self) -> None:
        # Started by the first request of each process: a gunicorn worker forked from a master
        # that built the app has no thread of its parent's.
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="nacos-discovery", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh):
            with self._lock:
                services = list(self._lists)
            for service in services:
                if self._stop.is_set():
                    return
                self._refresh_one(service)

    def _refresh_one(self, service: str) -> None:
        name = NACOS_SERVICE_NAMES[service]
        try:
            found = weighted_order(self.registry.instances(name, healthy_only=True))
        except RegistryError as exc:
            with self._lock:
                self._lists.setdefault(service, [])
                if self._reachable:
                    self._reachable = False
                    log.warning("Nacos unreachable (%s): routing from the last good lists", exc)
            return
        with self._lock:
            if not self._reachable:
                self._reachable = True
                log.info("Nacos reachable again at %s", self.registry.server)
            previous = self._lists.get(service) or []
            if found or not previous:
                self._empty_since.pop(service, None)
                if sorted(set(found)) != sorted(set(previous)):
                    log.info("%s instances: %s", name, ", ".join(sorted(set(found))) or "none")
                self._lists[service] = found
                return
            since = self._empty_since.setdefault(service, self.clock())
            if self.clock() - since >= self.empty_grace:
                log.warning("%s has no healthy instance in Nacos any more", name)
                self._lists[service] = []
                self._empty_since.pop(service, None)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)


def discovery_for(settings: Settings) -> Discovery:
    """Nacos when NACOS_SERVER is set (DESIGN.md §4), else the static upstreams."""
    return NacosDiscovery(settings) if settings.nacos_server else StaticDiscovery(settings)
