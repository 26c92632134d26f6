"""Which HTTP apps exist and where their factories live: `serve` starts one, `up` starts them all.

Factories are named as "module:callable" strings and imported only when used, so `cfmp token` or
`cfmp db upgrade` never import Flask apps, and a service still being written breaks only itself.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from flask import Flask

from common.cli.errors import OneLineError
from common.settings import SERVICES, Settings

AppFactory = Callable[[Settings], Flask]

# One line per service, in DESIGN.md §3's order; a service joins `cfmp serve` and `cfmp up` here.
SERVICE_APPS: dict[str, str] = {
    "orders": "api.orders:create_app",
    "payments": "api.payments:create_app",
    "notifications": "api.notifications:create_app",
}
GATEWAY_APP = "gateway:create_app"


def registered_services() -> list[str]:
    return [name for name in SERVICES if name in SERVICE_APPS]


def service_app(name: str) -> str:
    """The factory path of a service, or a one-line error that says what can be served."""
    if name in SERVICE_APPS:
        return SERVICE_APPS[name]
    available = ", ".join(registered_services())
    if name in SERVICES:
        raise OneLineError(f"service {name!r} is not available yet (available: {available})")
    raise OneLineError(f"unknown service {name!r} (available: {available})")


def load_factory(path: str) -> AppFactory:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
