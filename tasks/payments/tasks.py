"""Payments-pool tasks: thin wrappers over `tasks.payments.actions` and the provider adapters."""
from __future__ import annotations

import logging
from decimal import Decimal

import urllib3
from celery import shared_task
from celery.exceptions import Ignore
from flask import current_app

from models import Payment, PaymentOutbox, db
from tasks import outbox, workflows
from tasks.errors import PermanentError, TransientError
from tasks.payments import actions
from tasks.payments.providers import Provider, ProviderUnavailable, get_provider
from tasks.payments.providers.sandbox import SIGNATURE_HEADER, SandboxProvider
from tasks.retries import TASK_OPTIONS, transient_retries
from tasks.risk.actions import enabled_policies

log = logging.getLogger(__name__)
SWEEP_BATCH = 200
_HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=10))


def _provider(task, name: str) -> Provider:
    """The adapter, able to schedule the sandbox's own delayed callback on the payments pool."""
    def schedule(reference: str, amount: Decimal, currency: str, delay: float) -> None:
        task.app.send_task("payments.sandbox_notify", args=[reference, f"{amount:.2f}", currency], countdown=delay)

    return get_provider(name, current_app.config["CFMP_SETTINGS"], schedule)


def drive(task, payment_id: int) -> None:
    """(Re)start the payment workflow; every step is idempotent, so re-driving is always safe."""
    workflows.launch(workflows.payment(task.app, payment_id, enabled_policies()))


@shared_task(name="payments.start_workflow", **TASK_OPTIONS)
def start_workflow(self, event: dict) -> None:
    with transient_retries(self):
        drive(self, event["data"]["payment_id"])


@shared_task(name="payments.decide", **TASK_OPTIONS)
def decide(self, payment_id: int) -> str:
    with transient_retries(self):
        payment = db.session.get(Payment, payment_id)
        decision = actions.decide(payment_id, _provider(self, payment.payment_method))
        db.session.commit()
    return decision


@shared_task(name="payments.charge", **TASK_OPTIONS)
def charge(self, event: dict) -> bool:
    """An admin approved a held payment: charge it now."""
    with transient_retries(self):
        data = event["data"]
        charged = actions.charge(data["payment_id"], _provider(self, data["payment_method"]), actions.FROM_REVIEW)
        db.session.commit()
    return charged


@shared_task(name="payments.start_capture", **TASK_OPTIONS)
def start_capture(self, event: dict) -> None:
    data = event["data"]
    with transient_retries(self):
        workflows.launch(workflows.capture(self.app, data["payment_id"], data["order_uuid"],
                                           data["payment_method"], data["paid_at"]))


@shared_task(name="payments.capture", **TASK_OPTIONS)
def capture(self, payment_id: int) -> bool:
    with transient_retries(self):
        captured = actions.capture(payment_id)
        db.session.commit()
    if not captured:
        raise Ignore()  # the payment was cancelled or expired: the order must not become paid
    return captured


@shared_task(name="payments.settle_capture", **TASK_OPTIONS)
def settle_capture(self, order_paid: bool, payment_id: int) -> bool:
    with transient_retries(self):
        settled = actions.settle_capture(order_paid, payment_id)
        db.session.commit()
    return settled


@shared_task(name="payments.sandbox_notify", **TASK_OPTIONS)
def sandbox_notify(self, reference: str, amount: str, currency: str) -> int:
    """The sandbox provider calling us back: a signed POST over real HTTP to the callback URL.
    Like a real provider it knows only its own charge (reference, amount), not our database."""
    settings = current_app.config["CFMP_SETTINGS"]
    sandbox = SandboxProvider(settings)
    raw = sandbox.callback_body(reference, Decimal(amount), currency)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sandbox.sign(raw)}
    with transient_retries(self):
        try:
            reply = _HTTP.request("POST", f"{settings.payment_callback_base_url}/api/payments/callback/sandbox/",
                                  body=raw, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise TransientError(f"callback not delivered: {exc}") from exc
        # Like real providers, retry until a 2xx: a 404 may only mean our charge is not recorded
        # yet. A refused signature or body (400/401) cannot get better by waiting.
        if reply.status >= 300 and reply.status not in (400, 401):
            raise TransientError(f"callback answered {reply.status}")
    if reply.status >= 300:
        raise PermanentError(f"callback refused with {reply.status}: {reply.data[:200]!r}")
    return reply.status


@shared_task(name="payments.relay_outbox", **TASK_OPTIONS)
def relay_outbox(self) -> int:
    with transient_retries(self):
        return outbox.relay(db.session, PaymentOutbox)


@shared_task(name="payments.expire_pending_payments", **TASK_OPTIONS)
def expire_pending_payments(self) -> int:
    with transient_retries(self):
        expired = actions.expire_pending(SWEEP_BATCH)
        db.session.commit()
    return expired


@shared_task(name="payments.redrive_stalled_payments", **TASK_OPTIONS)
def redrive_stalled_payments(self) -> int:
    """Payments still pending long after creation lost their chord or a message: run it again."""
    with transient_retries(self):
        stalled = actions.stalled(current_app.config["CFMP_SETTINGS"].payment_redrive_after, SWEEP_BATCH)
        db.session.commit()  # marked as re-driven: the next sweeps leave them alone for a threshold
        for payment_id in stalled:
            log.warning("payment %s stalled: re-driving its workflow", payment_id)
            drive(self, payment_id)
    return len(stalled)


@shared_task(name="payments.redrive_unsettled_captures", **TASK_OPTIONS)
def redrive_unsettled_captures(self) -> int:
    """Captured payments whose order side never ran (the broker lost `orders.mark_paid` or
    `settle_capture`): run that tail again; both steps are idempotent."""
    with transient_retries(self):
        captured = actions.unsettled_captures(current_app.config["CFMP_SETTINGS"].payment_redrive_after, SWEEP_BATCH)
        for payment in captured:
            log.warning("payment %s captured but its order side never finished: re-driving it", payment.payment_uuid)
            workflows.launch(workflows.order_side(self.app, payment.id, str(payment.order_uuid),
                                                  payment.payment_method, payment.paid_at.isoformat()))
    return len(captured)


@shared_task(name="payments.reconcile_payments", **TASK_OPTIONS)
def reconcile_payments(self) -> dict[str, int]:
    """Ask the providers about payments `processing` for too long (a lost or late callback, a charge
    that timed out). One payment's trouble never blocks the rest; an unreachable provider is asked
    again on the next sweep. Returns how many of each answer were found."""
    found: dict[str, int] = {}
    with transient_retries(self):
        unsettled = actions.unsettled(current_app.config["CFMP_SETTINGS"].payment_reconcile_after, SWEEP_BATCH)
    for payment_id in unsettled:
        payment = db.session.get(Payment, payment_id)
        try:
            answer = actions.reconcile(payment_id, _provider(self, payment.payment_method))
        except Exception as exc:  # noqa: BLE001  one payment's trouble never stops the sweep
            db.session.rollback()
            answer = "unreachable" if isinstance(exc, ProviderUnavailable) else "unsettled"
            log.warning("payment %s not reconciled (%s): %r", payment.payment_uuid, answer, exc)
            actions.postpone(payment_id)  # to the back of the queue: asked again after the threshold
            db.session.commit()
        else:
            log.info("payment %s reconciled: the provider says %s", payment.payment_uuid, answer)
        found[answer] = found.get(answer, 0) + 1
    return found
