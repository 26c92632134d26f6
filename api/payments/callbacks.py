"""`POST /api/payments/callback/{provider}/`: public, trusted only through the provider's signature.

The signature is checked on the raw body (JSON for the sandbox and WeChat Pay, a form for Alipay)
before anything is parsed; a bad one is 401, logged, and changes nothing. A verified event is
recorded once per (provider, event id), so a replay is acknowledged and changes nothing either
(providers resend until they see their acknowledgement). A verified notification about nothing we
act on (a refund notice) is acknowledged without effect. The acknowledgement is the provider's own
format when its adapter has `acknowledge()` (Alipay: the body `success`; WeChat Pay: `{"code":
"SUCCESS"}`), else `{"received": true, "duplicate": ...}`; `X-CFMP-Callback` says `received`,
`duplicate` or `ignored` in every case. A provider that is not configured here answers 404.
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, request

from api.common.auth import public
from api.common.errors import NotFound, Unauthorized
from api.common.openapi import doc
from api.payments.schemas import CallbackAckSchema
from tasks.payments import actions
from tasks.payments.providers import IgnoredCallback, InvalidCallback, Provider, ProviderNotConfigured, get_provider

log = logging.getLogger(__name__)
bp = Blueprint("payment_callbacks", __name__, url_prefix="/api/payments/callback")
EFFECT_HEADER = "X-CFMP-Callback"


def _acknowledge(adapter: Provider, effect: str):
    """The provider's acknowledgement, plus `X-CFMP-Callback: received|duplicate|ignored`."""
    duplicate = effect == "duplicate"
    own = getattr(adapter, "acknowledge", None)
    body, status, headers = own(duplicate) if own else ({"received": True, "duplicate": duplicate}, 200, {})
    return body, status, {**headers, EFFECT_HEADER: effect}


@bp.post("/<provider>/")
@public
@doc("A payment provider's signed notification", tag="payments", response=CallbackAckSchema, errors=(401, 404))
def provider_callback(provider: str):
    try:
        adapter = get_provider(provider, current_app.config["CFMP_SETTINGS"])
    except KeyError:
        raise NotFound("unknown_provider", f"No payment provider {provider!r}.") from None
    except ProviderNotConfigured as exc:
        log.warning("%s callback from %s refused: %s", provider, request.remote_addr, exc)
        raise NotFound("provider_not_configured",
                       f"The payment provider {provider!r} is not configured here.") from None
    raw = request.get_data(cache=True)
    try:
        event = adapter.verify_callback(request.headers, raw)
    except InvalidCallback as exc:
        log.warning("rejected %s callback from %s: %s", provider, request.remote_addr, exc)
        raise Unauthorized("invalid_signature", "The callback signature could not be verified.") from None
    except IgnoredCallback as exc:
        log.info("%s callback acknowledged without effect: %s", provider, exc)
        return _acknowledge(adapter, "ignored")
    try:
        received = actions.receive_callback(provider, event, raw)
    except actions.UnknownReference:
        log.warning("%s callback for unknown charge %s (amount %s)", provider, event.reference, event.amount)
        raise NotFound("unknown_charge", "No payment matches this provider reference and amount.") from None
    log.info("%s callback %s for %s: %s%s", provider, event.event_id, event.reference, event.outcome,
             "" if received else " (duplicate)")
    return _acknowledge(adapter, "received" if received else "duplicate")
