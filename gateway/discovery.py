"""Where a service's instances are: a static map today, Nacos later, behind one small interface.

The proxy only ever asks `instances(service)` per request, so a Nacos-backed discovery (which would map
the service key to `routes.NACOS_SERVICE_NAMES` and cache healthy instances) can replace
`StaticDiscovery` without touching the proxy.
"""
from __future__ import annotations

from typing import Protocol

from urllib3.util import parse_url

from common.settings import Settings


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
