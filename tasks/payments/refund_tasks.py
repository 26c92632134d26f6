"""Payments-pool refund tasks: thin wrappers over `tasks.payments.refunds` and the provider adapters.

Kick-offs consume outbox events: `refund_workflow.start` (a refund was created), `refund_workflow.
order_cancel` (the order service: the buyer cancelled a paid order) and `payment.refund_required`
(money captured for an order that could not keep it). The workflow is `workflows.refund`; beat
re-drives refunds left open (`redrive_stalled_refunds`) and the order side of succeeded refunds whose
chain lost its tail (`redrive_unsettled_refunds`).
"""
from __future__ import annotations

import logging
import uuid

from celery import shared_task
from flask import current_app

from models import Refund, db
from tasks import workflows
from tasks.errors import PermanentError
from tasks.payments import refunds
from tasks.payments.providers import ProviderNotConfigured, ProviderRejected, get_provider
from tasks.retries import TASK_OPTIONS, transient_retries

log = logging.getLogger(__name__)
SWEEP_BATCH = 200


def _launch(task, refund_id: int, order_uuid: str) -> None:
    workflows.launch(workflows.refund(task.app, refund_id, order_uuid))


@shared_task(name="payments.start_refund", **TASK_OPTIONS)
def start_refund(self, event: dict) -> None:
    with transient_retries(self):
        _launch(self, event["data"]["refund_id"], event["data"]["order_uuid"])


@shared_task(name="payments.refund_cancelled_order", **TASK_OPTIONS)
def refund_cancelled_order(self, event: dict) -> str | None:
    data = event["data"]
    actor = data.get("actor")
    with transient_retries(self):
        refund = refunds.refund_cancelled_order(uuid.UUID(data["order_uuid"]), data.get("reason", ""),
                                                uuid.UUID(actor) if actor else None, data.get("cancel_id"))
        db.session.commit()
    return str(refund.refund_uuid) if refund else None


@shared_task(name="payments.refund_due_payment", **TASK_OPTIONS)
def refund_due_payment(self, event: dict) -> str | None:
    data = event["data"]
    with transient_retries(self):
        refund = refunds.refund_due(data["payment_id"], data.get("reason", ""))
        db.session.commit()
    return str(refund.refund_uuid) if refund else None


@shared_task(name="payments.refund_at_provider", **TASK_OPTIONS)
def refund_at_provider(self, refund_id: int) -> str:
    """Ask the provider (the refund uuid identifies it there, so a re-run is the same refund); an
    unreachable provider (`ProviderUnavailable`) is retried, the refund stays processing meanwhile.
    A refusal (`ProviderRejected`), or a provider this system does not have or has no settings for,
    fails the refund (its amount released, `refund.failed` recorded) rather than leaving it
    processing for the re-drive to send again forever."""
    with transient_retries(self):
        call = refunds.provider_request(refund_id)
        db.session.commit()  # `processing` is on record before the provider hears of it
        if call is None:
            return "decided"
        method, request = call
        try:
            provider = get_provider(method, current_app.config["CFMP_SETTINGS"])
        except (KeyError, ProviderNotConfigured) as exc:
            log.error("refund %s cannot be sent: no usable provider %r (%r)", refund_id, method, exc)
            if db.session.get(Refund, refund_id).provider_outcome is not None:
                # It answered "processing" before its settings went: it may still pay this refund
                # back, so the refund is not given up; the re-drive asks again once it is configured.
                raise PermanentError(f"no provider {method!r} for refund {refund_id}") from None
            return _fail(refund_id, "provider_not_configured")  # never sent: nothing can have moved
        try:
            result = provider.refund(request)
        except ProviderRejected as exc:  # a refusal the provider stated: no money moved
            log.warning("refund %s: the provider refused it: %s", refund_id, exc)
            return _fail(refund_id, f"provider_rejected: {exc}" if str(exc) else "provider_rejected")
        status = refunds.record_answer(refund_id, result)
        db.session.commit()
    return status.value


def _fail(refund_id: int, reason: str) -> str:
    refunds.fail_refund(refund_id, reason)
    db.session.commit()
    return "failed"


@shared_task(name="payments.settle_refund", **TASK_OPTIONS)
def settle_refund(self, refund_id: int) -> bool:
    with transient_retries(self):
        refunded = refunds.settle_refund(refund_id)
        db.session.commit()
    return refunded


@shared_task(name="payments.settle_refund_order", **TASK_OPTIONS)
def settle_refund_order(self, order_side: bool, refund_id: int) -> bool:
    """After `orders.on_refunded` (whose answer it receives): the refund's order side is done."""
    with transient_retries(self):
        refunds.settle_order_side(refund_id)
        db.session.commit()
    return order_side


@shared_task(name="payments.redrive_unsettled_refunds", **TASK_OPTIONS)
def redrive_unsettled_refunds(self) -> int:
    """Succeeded refunds whose order side never ran (the broker lost `orders.on_refunded` or
    `settle_refund_order`): run that tail again; both steps are idempotent."""
    after = current_app.config["CFMP_SETTINGS"].payment_redrive_after
    with transient_retries(self):
        unsettled = refunds.unsettled_order_sides(after, SWEEP_BATCH)
        for refund_id, order_uuid, fully_refunded in unsettled:
            log.warning("refund %s succeeded but its order side never finished: re-driving it", refund_id)
            workflows.launch(workflows.refund_order_side(self.app, refund_id, order_uuid, fully_refunded))
    return len(unsettled)


@shared_task(name="payments.redrive_stalled_refunds", **TASK_OPTIONS)
def redrive_stalled_refunds(self) -> int:
    """Refunds still pending or processing long after their last change lost a message, or wait on
    a provider that answered "processing": run their workflow again (every step is idempotent).
    Payments flagged `refund_due` with no `refund-due:` refund (the event that should have made it
    was dead-lettered or lost): make it now. Returns how many of both were re-driven."""
    after = current_app.config["CFMP_SETTINGS"].payment_redrive_after
    with transient_retries(self):
        stalled = refunds.stalled(after, SWEEP_BATCH)
        for refund_id, order_uuid in stalled:
            log.warning("refund %s stalled: re-driving its workflow", refund_id)
            _launch(self, refund_id, order_uuid)
        due = refunds.due_without_refund(after, SWEEP_BATCH)
        for payment_id in due:
            log.warning("payment %s is due a refund but has none: making it", payment_id)
            refunds.refund_due(payment_id, "")
            db.session.commit()  # the refund's kick-off is published on commit
    return len(stalled) + len(due)
