"""The sandbox provider: behaves like a real one, over real HTTP, with outcomes chosen by the amount.

`charge` accepts the payment (the reference and idempotency key are derived from the payment, so a
re-run is the same charge) and asks the payments pool to call back after `SANDBOX_CALLBACK_DELAY`
seconds: a signed POST to `{PAYMENT_CALLBACK_BASE_URL}/api/payments/callback/sandbox/`.
Outcomes by the amount's cents: `.13` is declined, `.66` never calls back and stays undecided when
queried (an unknown outcome, as a provider timing out), `.77` succeeds but its callback is lost (only
reconciliation's query finds out), anything else succeeds. Refunds answer at once: a refund whose
amount ends in `.31` is refused, any other succeeds. Signature: `X-Sandbox-Signature: t=<unix>,v1=<hex>`
with v1 = HMAC-SHA256(SANDBOX_SECRET, "<t>." + raw body); older than 5 minutes is refused.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from common.settings import Settings
from tasks.payments.providers import (
    CallbackEvent, ChargeRequest, ChargeResult, ChargeState, ChargeStatus, InvalidCallback, Outcome,
    ProviderNotConfigured, RefundOutcome,
    RefundRequest, RefundResult, Scheduler,
)

SIGNATURE_HEADER = "X-Sandbox-Signature"
TOLERANCE = 300  # seconds a signed callback stays acceptable
DECLINED_CENTS = 13
SILENT_CENTS = 66
LOST_CALLBACK_CENTS = 77
REFUSED_REFUND_CENTS = 31


def _cents(amount: Decimal) -> int:
    return int((amount * 100) % 100)


def outcome_for(amount: Decimal) -> Outcome | None:
    """What the sandbox will answer for `amount`; None means it never calls back."""
    cents = _cents(amount)
    if cents == DECLINED_CENTS:
        return Outcome.DECLINED
    if cents in (SILENT_CENTS, LOST_CALLBACK_CENTS):
        return None
    return Outcome.SUCCEEDED


def _is_unix_time(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 12


def reference_for(payment_uuid: str) -> str:
    return f"sbx_{payment_uuid.replace('-', '')}"


class SandboxProvider:
    name = "sandbox"

    def __init__(self, settings: Settings, schedule: Scheduler | None = None):
        if not settings.sandbox_enabled:
            raise ProviderNotConfigured("the sandbox is off (SANDBOX_ENABLED; off by default in production)")
        self.settings = settings
        self.schedule = schedule

    def charge(self, request: ChargeRequest) -> ChargeResult:
        reference = reference_for(request.payment_uuid)
        if outcome_for(request.amount) is not None and self.schedule is not None:
            self.schedule(reference, request.amount, request.currency, self.settings.sandbox_callback_delay)
        base = self.settings.payment_callback_base_url
        return ChargeResult(reference, {
            "provider_reference": reference,
            "idempotency_key": request.idempotency_key,
            "pay_url": f"https://sandbox.invalid/pay/{reference}",
            "qr_code": f"sandbox://pay/{reference}",
            "notify_url": f"{base}/api/payments/callback/sandbox/",
        })

    def query(self, request: ChargeRequest, reference: str) -> ChargeStatus:
        if reference != reference_for(request.payment_uuid):
            return ChargeStatus(ChargeState.CLOSED)
        cents = _cents(request.amount)
        if cents == SILENT_CENTS:
            return ChargeStatus(ChargeState.PROCESSING)
        if cents == DECLINED_CENTS:
            return ChargeStatus(ChargeState.DECLINED, request.amount)
        return ChargeStatus(ChargeState.SUCCEEDED, request.amount)

    def refund(self, request: RefundRequest) -> RefundResult:
        reference = f"sbr_{request.refund_uuid.replace('-', '')}"
        if _cents(request.amount) == REFUSED_REFUND_CENTS:
            return RefundResult(RefundOutcome.FAILED, reference, "sandbox_refund_refused")
        return RefundResult(RefundOutcome.SUCCEEDED, reference)

    # --- the provider's side: the callback it sends -------------------------------------------------
    def callback_body(self, reference: str, amount: Decimal, currency: str) -> bytes:
        outcome = outcome_for(amount) or Outcome.SUCCEEDED
        return json.dumps({
            "event_id": f"evt_{reference}_{outcome.value}", "reference": reference, "status": outcome.value,
            "amount": f"{amount:.2f}", "currency": currency,
        }, separators=(",", ":")).encode()

    def sign(self, raw: bytes, timestamp: int | None = None) -> str:
        t = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(self.settings.sandbox_secret.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
        return f"t={t},v1={mac}"

    # --- our side: verifying what arrives -----------------------------------------------------------
    def verify_callback(self, headers: Mapping[str, str], raw: bytes) -> CallbackEvent:
        parts = dict(p.split("=", 1) for p in headers.get(SIGNATURE_HEADER, "").split(",") if "=" in p)
        # ASCII digits only, and few: "²".isdigit() and int() of 5000 digits would raise, not refuse.
        if not _is_unix_time(parts.get("t", "")) or "v1" not in parts:
            raise InvalidCallback(f"missing or malformed {SIGNATURE_HEADER} header")
        if abs(time.time() - int(parts["t"])) > TOLERANCE:
            raise InvalidCallback("signature timestamp outside the tolerance")
        expected = self.sign(raw, int(parts["t"])).split("v1=", 1)[1]
        if not hmac.compare_digest(expected.encode(), parts["v1"].encode()):  # bytes: any text compares
            raise InvalidCallback("signature mismatch")
        try:
            body = json.loads(raw)
            return CallbackEvent(event_id=str(body["event_id"])[:128], reference=str(body["reference"])[:128],
                                 outcome=Outcome(body["status"]), amount=Decimal(str(body["amount"])))
        except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
            raise InvalidCallback(f"unreadable callback body: {exc!r}") from None
