"""What happens to payments, as plain functions over the session; callers commit unless noted.

Every state change is a conditional UPDATE (`Payment.move`) written together with its outbox event,
so the change and the event commit or vanish together. Workflow kick-offs are outbox events too
(`payment_workflow.*`, consumed by payments tasks), so a broker outage at request time delays a
payment but never loses it.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from models import (
    Payment, PaymentCallback, PaymentOutbox, PaymentStatus, ReviewStatus, RiskAssessment, RiskDecision, db, utcnow,
)
from tasks.errors import PermanentError
from tasks.payments.providers import CallbackEvent, ChargeRequest, Outcome, Provider

log = logging.getLogger(__name__)
# Internal kick-off events: a prefix no notification subscriber of "payment." matches.
START, CHARGE, CAPTURE = "payment_workflow.start", "payment_workflow.charge", "payment_workflow.capture"
FROM_PENDING = frozenset({PaymentStatus.PENDING})
FROM_REVIEW = frozenset({PaymentStatus.REVIEW})
FROM_PROCESSING = frozenset({PaymentStatus.PROCESSING})


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


def charge(payment_id: int, provider: Provider, sources: frozenset[PaymentStatus]) -> bool:
    """Ask the provider to charge, then record `processing`. The provider call comes first, as with a
    real provider; its idempotency key makes a repeated call the same charge."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.status not in sources:
        return False
    result = provider.charge(ChargeRequest(payment.id, str(payment.payment_uuid), payment.amount, payment.currency))
    if Payment.move(payment_id, PaymentStatus.PROCESSING, sources, provider_reference=result.reference,
                    payment_data=result.payment_data):
        return True
    # Cancelled meanwhile, but the provider has the charge: keep its reference so its callback is
    # recognised (and the money flagged for refund by `capture`).
    db.session.execute(sa.update(Payment).where(Payment.id == payment_id, Payment.provider_reference.is_(None))
                       .values(provider_reference=result.reference))
    return False


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
    payment = db.session.scalars(sa.select(Payment).where(Payment.provider_reference == event.reference)).first()
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
    if payment.status is PaymentStatus.SUCCEEDED:
        return True
    if not payment.refund_due:
        payment.refund_due = True
        _event(payment, "payment.refund_required", reason=f"captured_after_{payment.status.value}")
    log.warning("payment %s captured while %s: refund due", payment.payment_uuid, payment.status)
    return False


def settle_capture(order_paid: bool, payment_id: int) -> bool:
    """After `orders.mark_paid`: an order that could not become paid (the timeout sweep cancelled
    it first) means the captured money must go back; flag the payment for refund."""
    if order_paid:
        return True
    payment = db.session.get(Payment, payment_id)
    if not payment.refund_due:
        payment.refund_due = True
        _event(payment, "payment.refund_required", reason="order_not_payable")
    log.warning("payment %s succeeded but order %s was not payable: refund due", payment.payment_uuid,
                payment.order_uuid)
    return False


def expire_pending(batch: int) -> int:
    """Expire pending payments past `expires_at`, each by a conditional UPDATE (a payment moving on
    at the same moment no longer matches)."""
    ids = db.session.scalars(sa.select(Payment.id).where(Payment.status == PaymentStatus.PENDING,
                                                         Payment.expires_at <= utcnow())
                             .order_by(Payment.id).limit(batch)).all()
    return sum(_move(pid, PaymentStatus.EXPIRED, FROM_PENDING, failure_reason="payment_expired")
               is not None for pid in ids)


def stalled(older_than_seconds: int, batch: int) -> list[int]:
    """Pending payments whose workflow should have decided by now (a lost chord, a lost message)."""
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    return list(db.session.scalars(sa.select(Payment.id).where(
        Payment.status == PaymentStatus.PENDING, Payment.created_at <= cutoff,
        Payment.expires_at > utcnow()).order_by(Payment.id).limit(batch)).all())
