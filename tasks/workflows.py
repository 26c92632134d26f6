"""Canvas builders (DESIGN.md §8): functions that return a Signature, never run anything.

Steps are immutable (`.si`) and take ids: each re-reads the database, which stays the source of
truth; the chord only makes the happy path fast (reference §2.3), beat re-drives what it loses.
Signatures are built by name on the given Celery app, so the HTTP services (which do not import
task modules) and the workers build the same canvases.
"""
from __future__ import annotations

from celery import Celery, chain, chord, group
from celery.canvas import Signature
from celery.result import GroupResult


def _si(app: Celery, name: str, *args) -> Signature:
    return app.signature(name, args=args, immutable=True)


def payment(app: Celery, payment_id: int, policies: list[tuple[int, str]]) -> Signature:
    """`chain(chord(group(risk.rule_<rule> per enabled policy), risk.aggregate), payments.decide)`."""
    aggregate = _si(app, "risk.aggregate", payment_id, [policy_id for policy_id, _ in policies])
    decide = _si(app, "payments.decide", payment_id)
    if not policies:  # an empty chord header is a Celery corner case; there is nothing to join
        return chain(aggregate, decide)
    header = group(_si(app, f"risk.rule_{rule}", payment_id, policy_id) for policy_id, rule in policies)
    return chain(chord(header, aggregate), decide)


def capture(app: Celery, payment_id: int, order_uuid: str, payment_method: str, paid_at: str) -> Signature:
    """`chain(payments.capture, orders.mark_paid, payments.settle_capture)`; the last step receives
    mark_paid's answer (False: the order was cancelled meanwhile, so the money is due back)."""
    return chain(_si(app, "payments.capture", payment_id), *order_side(app, payment_id, order_uuid, payment_method,
                                                                       paid_at).tasks)


def order_side(app: Celery, payment_id: int, order_uuid: str, payment_method: str, paid_at: str) -> Signature:
    """`chain(orders.mark_paid, payments.settle_capture)`: the capture's tail, also re-driven alone by
    beat for a captured payment whose tail the broker lost."""
    return chain(
        _si(app, "orders.mark_paid", order_uuid, payment_method, paid_at),
        app.signature("payments.settle_capture", args=(payment_id,)),
    )


def refund(app: Celery, refund_id: int, order_uuid: str) -> Signature:
    """`chain(payments.refund_at_provider, payments.settle_refund, orders.on_refunded,
    payments.settle_refund_order)`; on_refunded receives settle_refund's answer (True: the payment is
    refunded in full, so a paid order is cancelled). The notifications fan-out follows from the
    `refund.*` and `order.*` outbox events."""
    return chain(
        _si(app, "payments.refund_at_provider", refund_id),
        _si(app, "payments.settle_refund", refund_id),
        *refund_order_side(app, refund_id, order_uuid).tasks,
    )


def refund_order_side(app: Celery, refund_id: int, order_uuid: str,
                      fully_refunded: bool | None = None) -> Signature:
    """`chain(orders.on_refunded, payments.settle_refund_order)`: the refund's tail. In the workflow
    on_refunded receives settle_refund's answer (`fully_refunded` None); beat re-drives the tail alone
    for a succeeded refund whose tail the broker lost, with that answer read from the database."""
    if fully_refunded is None:
        on_refunded = app.signature("orders.on_refunded", args=(order_uuid,))
    else:
        on_refunded = _si(app, "orders.on_refunded", fully_refunded, order_uuid)
    return chain(on_refunded, app.signature("payments.settle_refund_order", args=(refund_id,)))


def launch(signature: Signature) -> str:
    """Apply a canvas and return its last task id, without keeping anything to wait on.

    Applying a group registers every header result as "pending" on this thread's result backend:
    a strong reference kept until someone drains its result, plus a Redis pub/sub subscription.
    Tasks never wait on results, so nothing would ever drain them: a long-lived worker would pile
    them up, and a late garbage collection opens a connection just to unsubscribe. Celery has no
    public call to drop waiters by task id (the frozen results are copies), hence the guarded
    private access, which degrades to doing nothing on another backend.
    """
    result = signature.apply_async()
    ids, pending = set(), [result]
    while pending:
        node = pending.pop()
        ids.add(node.id)
        if isinstance(node, GroupResult):
            pending.extend(node.results or ())
        if getattr(node, "parent", None) is not None:
            pending.append(node.parent)
    backend = signature.app.backend
    consumer = getattr(backend, "result_consumer", None)
    for mapping in getattr(backend, "_pending_results", ()):
        for task_id in ids:
            mapping.pop(task_id, None)
    if consumer is not None:
        for task_id in ids:
            consumer.cancel_for(task_id)
    return result.id
