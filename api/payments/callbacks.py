"""`POST /api/payments/callback/{provider}/`: public, trusted only through the provider's signature.

The signature is checked on the raw body before anything is parsed; a bad one is 401, logged, and
changes nothing. A verified event is recorded once per (provider, event id), so a replay answers
200 with `duplicate: true` and changes nothing either (providers retry until they see a 2xx).
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, request

from api.common.auth import public
from api.common.errors import NotFound, Unauthorized
from api.common.openapi import doc
from api.payments.schemas import CallbackAckSchema
from tasks.payments import actions
from tasks.payments.providers import InvalidCallback, get_provider

log = logging.getLogger(__name__)
bp = Blueprint("payment_callbacks", __name__, url_prefix="/api/payments/callback")


@bp.post("/<provider>/")
@public
@doc("A payment provider's signed notification", tag="payments", response=CallbackAckSchema, errors=(401, 404))
def provider_callback(provider: str):
    try:
        adapter = get_provider(provider, current_app.config["CFMP_SETTINGS"])
    except KeyError:
        raise NotFound("unknown_provider", f"No payment provider {provider!r}.") from None
    raw = request.get_data(cache=True)
    try:
        event = adapter.verify_callback(request.headers, raw)
    except InvalidCallback as exc:
        log.warning("rejected %s callback from %s: %s", provider, request.remote_addr, exc)
        raise Unauthorized("invalid_signature", "The callback signature could not be verified.") from None
    try:
        received = actions.receive_callback(provider, event, raw)
    except actions.UnknownReference:
        log.warning("%s callback for unknown charge %s (amount %s)", provider, event.reference, event.amount)
        raise NotFound("unknown_charge", "No payment matches this provider reference and amount.") from None
    log.info("%s callback %s for %s: %s%s", provider, event.event_id, event.reference, event.outcome,
             "" if received else " (duplicate)")
    return {"received": True, "duplicate": not received}, 200
