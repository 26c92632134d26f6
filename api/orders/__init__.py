"""OrderService (:8001): `create_app(settings)` builds its Flask app."""
from __future__ import annotations

from flask import Flask

from api.common.factory import build_app
from common.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    from api.orders.views import bp

    return build_app("orders", ("orders",), [bp], settings)
