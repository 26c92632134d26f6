"""What happens to refunds, as plain functions over the session; callers commit.

A refund is created with its amount reserved on the payment (`models.refund.reserve`, one
conditional UPDATE) and its workflow kick-off (`refund_workflow.start`) in one transaction. The
workflow asks the provider (`provider_request` → the provider → `record_answer`), then settles
(`settle_refund`): refund succeeded, the amount counted on the payment, the payment partially or
fully refunded, and the public `refund.succeeded` event; once the order service has applied it
(`orders.on_refunded`), the refund's order side is stamped done (`settle_order_side`), and beat
re-drives that side for a succeeded refund left unstamped. A refused refund fails, gives its amount
back and publishes `refund.failed` (the buyer is told; the order service hears of a failed cancel).
Every step is a conditional UPDATE, so a re-run changes nothing.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from models import Payment, PaymentOutbox, PaymentStatus, Refund, RefundStatus, db, utcnow
from models.payment import REFUNDABLE
from models.refund import OPEN, add_refunded, release, reserve
from tasks.errors import PermanentError
from tasks.payments.providers import RefundOutcome, RefundRequest, RefundResult

log = logging.getLogger(__name__)
START = "refund_workflow.start"  # internal: no subscriber of "refund." matches it
# A payment cancelled, expired or failed here while the provider took its money (`refund_due`):
# only the system refunds those, and their status stays as it is.
CAPTURED_LATE = frozenset({PaymentStatus.CANCELLED, PaymentStatus.EXPIRED, PaymentStatus.FAILED})
ATTEMPTS = 3  # a refund of "what is left" re-reads the remainder after losing a race, this often
# Request keys of system refunds. A cancel is keyed by its own request (the order service's audit
# entry `refund_requested`, `cancel_id` in its event): a redelivered event is one refund, a new
# cancel after a failed refund is a new attempt. Events written before cancel ids existed carry
# none and keep the old key, one per order.
CANCEL_KEY = "order-cancel:"
DUE_KEY = "refund-due:"


def cancel_key(order_uuid: uuid.UUID, cancel_id: int | None) -> str:
    return f"{CANCEL_KEY}{order_uuid}" if cancel_id is None else f"{CANCEL_KEY}{order_uuid}:{cancel_id}"


def cancel_of(request_key: str | None) -> tuple[bool, int | None]:
    """(is the refund a buyer's cancel, the cancel request's id when the key names one)."""
    if not request_key or not request_key.startswith(CANCEL_KEY):
        return False, None
    _, _, cancel_id = request_key[len(CANCEL_KEY):].partition(":")
    return True, int(cancel_id) if cancel_id.isdigit() else None


class NotRefundable(Exception):
    def __init__(self, status: PaymentStatus):
        super().__init__(f"a {status} payment cannot be refunded")
        self.status = status


class ExceedsRemainder(Exception):
    def __init__(self, remainder: Decimal):
        super().__init__(f"only {remainder:.2f} is left to refund")
        self.remainder = remainder


class NothingLeft(ExceedsRemainder):
    """A refund of "what is left" when nothing is: the other refunds hold all the money."""


def remainder(payment: Payment) -> Decimal:
    return payment.amount - payment.refund_reserved


def _refundable(due: bool):
    condition = Payment.status.in_(REFUNDABLE)
    if due:
        condition = sa.or_(condition, sa.and_(Payment.refund_due.is_(True), Payment.status.in_(CAPTURED_LATE)))
    return condition


def _by_key(request_key: str | None) -> Refund | None:
    if request_key is None:
        return None
    return db.session.scalars(sa.select(Refund).where(Refund.request_key == request_key)).first()


def _event(refund: Refund, event_type: str) -> None:
    """An outbox event about `refund`; the names are the ones the notification templates read."""
    payment = db.session.get(Payment, refund.payment_id, populate_existing=True)
    order_cancel, cancel_id = cancel_of(refund.request_key)
    db.session.add(PaymentOutbox.new(event_type, refund.refund_uuid, {
        "refund_id": refund.id, "refund_uuid": str(refund.refund_uuid), "payment_id": payment.id,
        "payment_uuid": str(payment.payment_uuid), "order_uuid": str(payment.order_uuid),
        "buyer_uuid": str(payment.user_uuid), "seller_uuid": str(payment.seller_uuid),
        "amount": f"{refund.amount:.2f}", "currency": refund.currency, "status": refund.status.value,
        "reason": refund.reason, "failure_reason": refund.failure_reason,
        "payment_status": payment.status.value, "refunded_amount": f"{payment.refunded_amount:.2f}",
        # A buyer's cancel of a paid order (`orders.on_refund_failed` reads them).
        "order_cancel": order_cancel, "order_cancel_id": cancel_id,
    }))


def create_refund(payment_id: int, amount: Decimal | None, reason: str, requested_by: uuid.UUID | None = None,
                  request_key: str | None = None, due: bool = False) -> Refund:
    """A pending refund of `amount` (None: all that is left) with its workflow kick-off, or the refund
    already made under `request_key`. Raises NotRefundable or ExceedsRemainder, changing nothing.
    `due` (system refunds only) also allows a `refund_due` payment cancelled, expired or failed here.
    The checks here give clear errors; `reserve`'s conditional UPDATE is what enforces them."""
    if (existing := _by_key(request_key)) is not None:
        return existing
    for _ in range(ATTEMPTS):
        payment = db.session.get(Payment, payment_id, populate_existing=True)
        if payment.status not in REFUNDABLE and not (due and payment.refund_due and payment.status in CAPTURED_LATE):
            raise NotRefundable(payment.status)
        left = remainder(payment)
        if amount is None and left <= 0:
            raise NothingLeft(left)
        wanted = left if amount is None else amount
        if wanted > left:
            raise ExceedsRemainder(left)
        if reserve(payment_id, wanted, _refundable(due)):
            break
        if (existing := _by_key(request_key)) is not None:  # made by a racing consumer meanwhile
            return existing
    else:
        raise ExceedsRemainder(remainder(db.session.get(Payment, payment_id, populate_existing=True)))
    refund = Refund(payment_id=payment_id, amount=wanted, currency=payment.currency, reason=reason,
                    requested_by=requested_by, request_key=request_key, status=RefundStatus.PENDING)
    db.session.add(refund)
    try:
        db.session.flush()
    except IntegrityError:  # the same request_key won meanwhile (and holds the money, not us)
        db.session.rollback()
        return _by_key(request_key)
    _event(refund, START)
    log.info("refund %s of %s %s requested for payment %s (%s)", refund.refund_uuid, wanted, refund.currency,
             payment.payment_uuid, request_key or requested_by)
    return refund


def provider_request(refund_id: int) -> tuple[str, RefundRequest] | None:
    """pending → processing, and what to ask the provider (payment method, request); None when no
    call is needed: the refund is decided, or the provider already said it succeeded."""
    Refund.move(refund_id, RefundStatus.PROCESSING)
    refund = db.session.get(Refund, refund_id, populate_existing=True)
    if refund is None:
        raise PermanentError(f"no refund {refund_id}")
    if refund.status is not RefundStatus.PROCESSING or refund.provider_outcome == RefundOutcome.SUCCEEDED:
        return None
    payment = refund.payment
    return payment.payment_method, RefundRequest(
        refund_uuid=str(refund.refund_uuid), payment_uuid=str(payment.payment_uuid),
        provider_reference=payment.provider_reference or "", amount=refund.amount,
        payment_amount=payment.amount, currency=refund.currency, reason=refund.reason)


def record_answer(refund_id: int, result: RefundResult) -> RefundStatus:
    """Keep the provider's answer on a processing refund; a refusal fails it at once."""
    if result.outcome is RefundOutcome.FAILED:
        fail_refund(refund_id, result.detail or "refund_refused", result.reference or None)
    else:
        db.session.execute(
            sa.update(Refund).where(Refund.id == refund_id, Refund.status == RefundStatus.PROCESSING)
            .values(provider_outcome=result.outcome.value, provider_reference=result.reference or None,
                    updated_at=utcnow())
            .execution_options(synchronize_session=False))
    return db.session.get(Refund, refund_id, populate_existing=True).status


def fail_refund(refund_id: int, reason: str, reference: str | None = None) -> bool:
    """pending/processing → failed, its amount given back and `refund.failed` recorded, once."""
    if not Refund.move(refund_id, RefundStatus.FAILED, failure_reason=reason[:255],
                       provider_outcome=RefundOutcome.FAILED.value, provider_reference=reference):
        return False
    refund = db.session.get(Refund, refund_id, populate_existing=True)
    release(refund.payment_id, refund.amount)
    _event(refund, "refund.failed")
    log.warning("refund %s of %s %s failed: %s", refund.refund_uuid, refund.amount, refund.currency, reason)
    return True


def settle_refund(refund_id: int) -> bool:
    """processing → succeeded once the provider said so: the amount is counted on the payment, which
    becomes partially refunded or refunded, and `refund.succeeded` is recorded. A re-run changes
    nothing. Answers whether the payment is now refunded in full (what `orders.on_refunded` needs)."""
    if Refund.move(refund_id, RefundStatus.SUCCEEDED, Refund.provider_outcome == RefundOutcome.SUCCEEDED.value,
                   refunded_at=utcnow()):
        refund = db.session.get(Refund, refund_id, populate_existing=True)
        add_refunded(refund.payment_id, refund.amount)  # locks the payment row until commit
        payment = db.session.get(Payment, refund.payment_id, populate_existing=True)
        if payment.status in REFUNDABLE:  # a late capture (cancelled payment) keeps its status
            full = payment.refunded_amount >= payment.amount
            target = PaymentStatus.REFUNDED if full else PaymentStatus.PARTIALLY_REFUNDED
            if target is not payment.status:
                Payment.move(payment.id, target)
        _event(refund, "refund.succeeded")
        log.info("refund %s of %s %s succeeded (payment %s)", refund.refund_uuid, refund.amount, refund.currency,
                 payment.payment_uuid)
    refund = db.session.get(Refund, refund_id)
    if refund is None:
        raise PermanentError(f"no refund {refund_id}")
    return fully_refunded(db.session.get(Payment, refund.payment_id, populate_existing=True))


def fully_refunded(payment: Payment) -> bool:
    """What `orders.on_refunded` is told: the payment is refunded in full (its order is cancelled)."""
    return payment.status is PaymentStatus.REFUNDED


def settle_order_side(refund_id: int) -> bool:
    """After `orders.on_refunded`: the refund's order side is done (`order_settled_at`), whatever it
    answered (a partial refund or a completed order changes nothing there). True the first time.
    Bookkeeping, not a change of the refund: `updated_at` (what `stalled` reads) is left as it is."""
    return db.session.execute(
        sa.update(Refund).where(Refund.id == refund_id, Refund.order_settled_at.is_(None))
        .values(order_settled_at=utcnow(), updated_at=Refund.updated_at)
        .execution_options(synchronize_session=False)).rowcount == 1


def unsettled_order_sides(older_than_seconds: int, batch: int) -> list[tuple[int, str, bool]]:
    """(refund id, order uuid, payment refunded in full) of succeeded refunds whose order side never
    finished (`order_settled_at` unset well after `refunded_at`): the broker lost the rest of their chain."""
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    rows = db.session.execute(
        sa.select(Refund.id, Payment).join(Payment, Refund.payment_id == Payment.id)
        .where(Refund.status == RefundStatus.SUCCEEDED, Refund.order_settled_at.is_(None),
               Refund.refunded_at <= cutoff)
        .order_by(Refund.refunded_at, Refund.id).limit(batch)).all()
    return [(refund_id, str(payment.order_uuid), fully_refunded(payment)) for refund_id, payment in rows]


def due_without_refund(older_than_seconds: int, batch: int) -> list[int]:
    """Payments flagged `refund_due` that have no `refund-due:` refund, untouched for too long: their
    `payment.refund_required` event was dead-lettered or lost, or they were flagged before refunds
    existed. Only those with money left to reserve (other refunds in flight may hold it all)."""
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    has_due_refund = sa.exists().where(Refund.payment_id == Payment.id,
                                       Refund.request_key.startswith(DUE_KEY))
    return list(db.session.scalars(
        sa.select(Payment.id).where(Payment.refund_due.is_(True), _refundable(True),
                                    Payment.refund_reserved < Payment.amount, Payment.updated_at <= cutoff,
                                    ~has_due_refund)
        .order_by(Payment.id).limit(batch)).all())


def stalled(older_than_seconds: int, batch: int) -> list[tuple[int, str]]:
    """(refund id, order uuid) of refunds pending or processing, untouched for too long."""
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    rows = db.session.execute(
        sa.select(Refund.id, Payment.order_uuid).join(Payment, Refund.payment_id == Payment.id)
        .where(Refund.status.in_(OPEN), Refund.updated_at <= cutoff).order_by(Refund.id).limit(batch)).all()
    return [(refund_id, str(order_uuid)) for refund_id, order_uuid in rows]


def refund_cancelled_order(order_uuid: uuid.UUID, reason: str, requested_by: uuid.UUID | None,
                           cancel_id: int | None = None) -> Refund | None:
    """The buyer cancelled a paid order: refund all that is left of its payment, once per cancel
    request (`cancel_id`), so a redelivered event refunds once and a cancel after a failed refund
    is a new attempt."""
    payment = db.session.scalars(sa.select(Payment).where(Payment.order_uuid == order_uuid,
                                                          Payment.status.in_(REFUNDABLE))).first()
    if payment is None:
        log.warning("order %s cancelled but it has no refundable payment", order_uuid)
        return None
    return _system_refund(payment, reason or "order_cancelled", cancel_key(order_uuid, cancel_id),
                          requested_by)


def refund_due(payment_id: int, reason: str) -> Refund | None:
    """Money captured for an order that could not keep it: refund all of it, once per payment."""
    payment = db.session.get(Payment, payment_id)
    return _system_refund(payment, reason or "refund_due", f"{DUE_KEY}{payment.payment_uuid}", None, due=True)


def _system_refund(payment: Payment, reason: str, request_key: str, requested_by: uuid.UUID | None,
                   due: bool = False) -> Refund | None:
    try:
        return create_refund(payment.id, None, reason, requested_by, request_key, due)
    except (NotRefundable, ExceedsRemainder) as exc:  # refunded already, or by other refunds in flight
        log.info("no refund %s for payment %s: %s", request_key, payment.payment_uuid, exc)
        return None
