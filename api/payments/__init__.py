"""PaymentService (:8002): payments, provider callbacks and the risk admin API on the `payments` bind."""
from __future__ import annotations

from flask import Flask

from api.common.factory import build_app
from common.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    from api.payments.callbacks import bp as callbacks
    from api.payments.refunds import bp as refunds
    from api.payments.risk_views import bp as risk
    from api.payments.views import bp as payments

    app = build_app("payments", ("payments",), [payments, refunds, callbacks, risk], settings)
    app.extensions["openapi.refinements"] = [_offered_methods]
    return app


def _offered_methods(document: dict, settings: Settings) -> None:
    """`/openapi.json` lists the payment methods configured here: the others are 422
    `payment_method_unavailable`, which a client can only know from the document."""
    from api.payments.schemas import METHODS
    from tasks.payments.providers import is_configured

    field = document["components"]["schemas"]["PaymentCreate"]["properties"]["payment_method"]
    field["enum"] = [method for method in METHODS if is_configured(method, settings)]
