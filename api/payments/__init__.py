"""PaymentService (:8002): payments, provider callbacks and the risk admin API on the `payments` bind."""
from __future__ import annotations

from flask import Flask

from api.common.factory import build_app
from common.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    from api.payments.callbacks import bp as callbacks
    from api.payments.risk_views import bp as risk
    from api.payments.views import bp as payments

    return build_app("payments", ("payments",), [payments, callbacks, risk], settings)
