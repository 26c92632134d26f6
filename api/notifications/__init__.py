"""NotificationService (:8004): `create_app(settings)` builds its Flask app."""
from __future__ import annotations

from flask import Flask

from api.common.factory import build_app
from common.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    from api.notifications import deliveries, preferences, views

    return build_app("notifications", ("notifications",), [views.bp, preferences.bp, deliveries.bp], settings)
