"""What happens to payments, as plain functions over the session; callers commit unless noted.

Every state change is a conditional UPDATE (`Payment.move`) written together with its outbox event,
so the change and the event commit or vanish together. Workflow kick-offs are outbox events too
(`payment_workflow.*`, consumed by payments tasks), so a broker outage at request time delays a
payment but never loses it.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from models import (
    Payment, PaymentCallback, PaymentOutbox, PaymentStatus, ReviewStatus, RiskAssessment, RiskDecision, db, utcnow,
)
from tasks.errors import PermanentError
from tasks.payments.providers import (
    CallbackEvent, ChargeRequest, ChargeState, Outcome, Provider, ProviderRejected, ProviderUnavailable,
)

log = logging.getLogger(__name__)
# Internal kick-off events: a prefix no notification subscriber of "payment." matches.
START, CHARGE, CAPTURE = "payment_workflow.start", "payment_workflow.charge", "payment_workflow.capture"
FROM_PENDING = frozenset({PaymentStatus.PENDING})
FROM_REVIEW = frozenset({PaymentStatus.REVIEW})
FROM_PROCESSING = frozenset({PaymentStatus.PROCESSING})
# Captured already: a later success notice (a re-run, or a provider's "finished" after a refund) changes nothing.
CAPTURED = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED})
EXPIRABLE = frozenset({PaymentStatus.PENDING, PaymentStatus.REVIEW})


class PaymentInFlight(Exception):
    """The order already has a payment pending, in review, processing or succeeded."""

    def __init__(self, status: str | None):
        super().__init__(f"the order already has a payment ({status})")
        self.status = status


class StateConflict(Exception):
    """A transition lost to another one (or was never legal); carries the status that won."""

    def __init__(self, current: PaymentStatus):
        super().__init__(f"the payment is {current}")
        self.current = current


def _event(payment: Payment, event_type: str, **extra) -> None:
    db.session.add(PaymentOutbox.new(event_type, payment.payment_uuid, {
        "payment_id": payment.id, "payment_uuid": str(payment.payment_uuid), "order_uuid": str(payment.order_uuid),
        # The payer is the order's buyer: `buyer_uuid` and `reason` are the names the notification
        # templates (tasks/notifications/templates.py) address people and explain failures by.
        "user_uuid": str(payment.user_uuid), "buyer_uuid": str(payment.user_uuid),
        "seller_uuid": str(payment.seller_uuid),
        "amount": f"{payment.amount:.2f}", "currency": payment.currency, "payment_method": payment.payment_method,
        "status": payment.status.value, "failure_reason": payment.failure_reason,
        "reason": payment.failure_reason or "", **extra,
    }))


def _move(payment_id: int, target: PaymentStatus, sources: frozenset[PaymentStatus] | None = None,
          **values) -> Payment | None:
    """Move and, when it happened, record the public event `payment.<status>`."""
    if not Payment.move(payment_id, target, sources, **values):
        return None
    payment = db.session.get(Payment, payment_id, populate_existing=True)
    _event(payment, f"payment.{target.value}")
    return payment


def create_payment(user_uuid: uuid.UUID, order: dict, method: str, expiry_seconds: int) -> Payment:
    """A pending payment of `order` (as the order service answered it) and its workflow kick-off."""
    order_uuid = uuid.UUID(order["order_uuid"])
    existing = db.session.scalars(sa.select(Payment.status).where(Payment.active_order_uuid == order_uuid)).first()
    if existing is not None:
        raise PaymentInFlight(existing.value)
    payment = Payment(order_uuid=order_uuid, active_order_uuid=order_uuid, user_uuid=user_uuid,
                      seller_uuid=uuid.UUID(order["seller_uuid"]), amount=Decimal(order["total_amount"]),
                      currency=order["currency"], shipping_address=order["shipping_address"], payment_method=method,
                      status=PaymentStatus.PENDING, expires_at=utcnow() + dt.timedelta(seconds=expiry_seconds))
    db.session.add(payment)
    try:
        db.session.flush()  # the UNIQUE active_order_uuid decides between racing requests
    except IntegrityError:
        db.session.rollback()
        raise PaymentInFlight(None) from None
    _event(payment, START)
    return payment


def cancel_payment(payment: Payment) -> Payment:
    if _move(payment.id, PaymentStatus.CANCELLED, failure_reason="cancelled_by_user") is None:
        db.session.refresh(payment)
        raise StateConflict(payment.status)
    db.session.refresh(payment)
    return payment


def decide(payment_id: int, provider: Provider) -> str:
    """Apply the risk decision: allow → charge, review → hold, block → fail. Safe to run twice."""
    assessment = db.session.scalars(sa.select(RiskAssessment).where(RiskAssessment.payment_id == payment_id)).first()
    if assessment is None:
        raise PermanentError(f"payment {payment_id} has no risk assessment")
    if assessment.decision is RiskDecision.BLOCK:
        _move(payment_id, PaymentStatus.FAILED, FROM_PENDING, failure_reason="risk_blocked")
    elif assessment.decision is RiskDecision.REVIEW:
        _move(payment_id, PaymentStatus.REVIEW)
    else:
        charge(payment_id, provider, FROM_PENDING)
    return assessment.decision.value


def _charge_request(payment: Payment) -> ChargeRequest:
    return ChargeRequest(payment.id, str(payment.payment_uuid), payment.amount, payment.currency,
                         expires_at=payment.expires_at)


def charge(payment_id: int, provider: Provider, sources: frozenset[PaymentStatus]) -> bool:
    """Ask the provider to charge, then record `processing` with its answer. The provider call comes
    first, as with a real provider; its idempotency key makes a repeated call the same charge.

    A provider that cannot be reached may still have taken the charge, so the payment becomes
    `processing` without an answer (committed here, before the error propagates and the task
    retries) and is never assumed failed: a retry sends the same charge again, and reconciliation
    asks the provider about whatever is left undecided.
    """
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        return False
    unanswered = payment.status is PaymentStatus.PROCESSING and not payment.payment_data
    if payment.status not in sources and not unanswered:
        return False
    try:
        result = provider.charge(_charge_request(payment))
    except ProviderUnavailable:
        if Payment.move(payment_id, PaymentStatus.PROCESSING, sources):
            db.session.commit()
        raise
    except ProviderRejected as exc:
        log.warning("payment %s: the provider refused the charge: %s", payment.payment_uuid, exc)
        _move(payment_id, PaymentStatus.FAILED, sources | FROM_PROCESSING, failure_reason="payment_declined")
        return False
    answer = {"provider_reference": result.reference, "payment_data": result.payment_data}
    if Payment.move(payment_id, PaymentStatus.PROCESSING, sources, **answer):
        return True
    if unanswered and _record_answer(payment_id, PaymentStatus.PROCESSING, **answer):
        return True
    # Cancelled meanwhile, but the provider has the charge: keep its reference so its callback is
    # recognised (and the money flagged for refund by `capture`).
    db.session.execute(sa.update(Payment).where(Payment.id == payment_id, Payment.provider_reference.is_(None))
                       .values(provider_reference=result.reference))
    return False


def _record_answer(payment_id: int, status: PaymentStatus, provider_reference: str, payment_data: dict) -> bool:
    return db.session.execute(
        sa.update(Payment).where(Payment.id == payment_id, Payment.status == status)
        .values(provider_reference=provider_reference, payment_data_json=json.dumps(payment_data, sort_keys=True),
                updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def review(assessment: RiskAssessment, admin_uuid: uuid.UUID, approve: bool) -> None:
    """An admin's verdict on a held payment: approve → charge (via the outbox), reject → failed."""
    verdict = ReviewStatus.APPROVED if approve else ReviewStatus.REJECTED
    updated = db.session.execute(
        sa.update(RiskAssessment)
        .where(RiskAssessment.id == assessment.id, RiskAssessment.review_status == ReviewStatus.PENDING)
        .values(review_status=verdict, reviewed_by=admin_uuid, reviewed_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    payment = db.session.get(Payment, assessment.payment_id, populate_existing=True)  # fresh, not the joined copy
    if updated != 1 or payment.status is not PaymentStatus.REVIEW:
        db.session.rollback()
        db.session.refresh(assessment)
        raise StateConflict(payment.status)
    if approve:
        _event(payment, CHARGE)
    elif _move(payment.id, PaymentStatus.FAILED, FROM_REVIEW, failure_reason="risk_rejected") is None:
        db.session.rollback()
        raise StateConflict(db.session.get(Payment, assessment.payment_id).status)


class UnknownReference(Exception):
    """A correctly signed callback about a charge this system never made (or for another amount)."""


def receive_callback(provider_name: str, event: CallbackEvent, raw: bytes) -> bool:
    """Record a verified callback once; False when this event was already received (a replay).

    Declines fail the payment here; successes enqueue the capture workflow through the outbox, in
    the same transaction as the dedupe row. Commits itself: the UNIQUE insert *is* the decision.
    """
    # A provider speaks only for its own charges: a callback verified with one provider's key never
    # settles a payment made with another, whatever reference it names.
    payment = db.session.scalars(sa.select(Payment).where(Payment.provider_reference == event.reference,
                                                          Payment.payment_method == provider_name)).first()
    if payment is None or payment.amount != event.amount:
        raise UnknownReference(event.reference)
    db.session.add(PaymentCallback(provider=provider_name, event_id=event.event_id, provider_reference=event.reference,
                                   outcome=event.outcome.value, payload=raw.decode("utf-8", "replace")))
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return False
    if event.outcome is Outcome.SUCCEEDED:
        _event(payment, CAPTURE, paid_at=utcnow().isoformat())
    else:
        _move(payment.id, PaymentStatus.FAILED, FROM_PROCESSING, failure_reason="payment_declined")
    db.session.commit()
    return True


def capture(payment_id: int) -> bool:
    """processing → succeeded; True also when it already succeeded (a re-run changes nothing).

    False when the payment was cancelled or expired meanwhile: the provider took money the order
    can no longer keep, so the payment is flagged `refund_due` and the order is left alone.
    """
    if _move(payment_id, PaymentStatus.SUCCEEDED, paid_at=utcnow()) is not None:
        return True
    payment = db.session.get(Payment, payment_id, populate_existing=True)
    if payment.status in CAPTURED:
        return True
    if not payment.refund_due:
        payment.refund_due = True
        _event(payment, "payment.refund_required", reason=f"captured_after_{payment.status.value}")
    log.warning("payment %s captured while %s: refund due", payment.payment_uuid, payment.status)
    return False


def settle_capture(order_paid: bool, payment_id: int) -> bool:
    """After `orders.mark_paid`: an order that could not become paid (the timeout sweep cancelled
    it first) means the captured money must go back; flag the payment for refund. Either way the
    capture's order side is done (`capture_settled_at`)."""
    db.session.execute(sa.update(Payment).where(Payment.id == payment_id, Payment.capture_settled_at.is_(None))
                       .values(capture_settled_at=utcnow()).execution_options(synchronize_session=False))
    if order_paid:
        return True
    payment = db.session.get(Payment, payment_id, populate_existing=True)
    if payment.status is PaymentStatus.REFUNDED:  # a refund overtook mark_paid: the money is back already
        log.info("payment %s refunded in full before order %s was paid: no refund due", payment.payment_uuid,
                 payment.order_uuid)
        return False
    if not payment.refund_due:
        payment.refund_due = True
        _event(payment, "payment.refund_required", reason="order_not_payable")
    log.warning("payment %s succeeded but order %s was not payable: refund due", payment.payment_uuid,
                payment.order_uuid)
    return False


def unsettled_captures(older_than_seconds: int, batch: int) -> list[Payment]:
    """Captured payments whose order side never finished (`capture_settled_at` unset well after
    `paid_at`): the broker lost the rest of their capture chain."""
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    return list(db.session.scalars(sa.select(Payment).where(
        Payment.status.in_(CAPTURED), Payment.capture_settled_at.is_(None), Payment.paid_at <= cutoff)
        .order_by(Payment.paid_at, Payment.id).limit(batch)).all())


def expire_pending(batch: int) -> int:
    """Expire pending payments, and payments still held for review, past `expires_at`, each by a
    conditional UPDATE (a payment moving on at the same moment no longer matches). A payment that
    reached the provider (`processing`) never expires: reconciliation settles it."""
    ids = db.session.scalars(sa.select(Payment.id).where(Payment.status.in_(EXPIRABLE),
                                                         Payment.expires_at <= utcnow())
                             .order_by(Payment.id).limit(batch)).all()
    return sum(_move(pid, PaymentStatus.EXPIRED, EXPIRABLE, failure_reason="payment_expired")
               is not None for pid in ids)


def unsettled(older_than_seconds: int, batch: int) -> list[int]:
    """Payments `processing` for longer than the threshold: their callback is late, lost or never
    coming, or their charge got no answer. Oldest first."""
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    return list(db.session.scalars(sa.select(Payment.id).where(
        Payment.status == PaymentStatus.PROCESSING, Payment.updated_at <= cutoff)
        .order_by(Payment.updated_at, Payment.id).limit(batch)).all())


def postpone(payment_id: int) -> None:
    """Send a `processing` payment to the back of the reconciliation queue (`unsettled` is oldest first)."""
    db.session.execute(sa.update(Payment).where(Payment.id == payment_id, Payment.status == PaymentStatus.PROCESSING)
                       .values(updated_at=utcnow()).execution_options(synchronize_session=False))


def reconcile(payment_id: int, provider: Provider) -> str:
    """Settle one `processing` payment by asking its provider; what it answers goes through the same
    path as a callback (`receive_callback`, deduplicated by a per-charge event id), so a reconcile
    racing the real callback captures once. Returns what was found; commits itself."""
    payment = db.session.get(Payment, payment_id, populate_existing=True)
    if payment is None or payment.status is not PaymentStatus.PROCESSING:
        return "settled"
    if not payment.payment_data:  # the charge itself got no answer: send it again (same charge)
        charge(payment_id, provider, FROM_PROCESSING)
        db.session.commit()
        return "charge_resent"
    found = provider.query(_charge_request(payment), payment.provider_reference)
    if found.state in (ChargeState.SUCCEEDED, ChargeState.DECLINED):
        outcome = Outcome.SUCCEEDED if found.state is ChargeState.SUCCEEDED else Outcome.DECLINED
        event = CallbackEvent(event_id=f"query:{payment.provider_reference}", reference=payment.provider_reference,
                              outcome=outcome, amount=found.amount if found.amount is not None else payment.amount)
        raw = json.dumps({"source": "reconciliation", "state": found.state.value, "amount": f"{event.amount:.2f}"})
        receive_callback(provider.name, event, raw.encode())
    elif found.state is ChargeState.CLOSED:
        _move(payment_id, PaymentStatus.FAILED, FROM_PROCESSING, failure_reason="provider_closed")
    else:  # still undecided at the provider: ask again after another threshold, not on every sweep
        postpone(payment_id)
    db.session.commit()
    return found.state.value


def stalled(older_than_seconds: int, batch: int) -> list[int]:
    """Pending payments whose workflow should have decided by now (a lost chord, a lost message),
    untouched since created or since last re-driven. Each one found is marked as re-driven now
    (`updated_at`), so a backlog longer than the threshold is not re-driven again on every sweep."""
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    ids = list(db.session.scalars(sa.select(Payment.id).where(
        Payment.status == PaymentStatus.PENDING, Payment.updated_at <= cutoff,
        Payment.expires_at > utcnow()).order_by(Payment.updated_at, Payment.id).limit(batch)).all())
    if ids:
        db.session.execute(sa.update(Payment).where(Payment.id.in_(ids), Payment.status == PaymentStatus.PENDING)
                           .values(updated_at=utcnow()).execution_options(synchronize_session=False))
    return ids
