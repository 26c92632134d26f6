"""The risk rules: each looks at one payment with its policy's parameters and says whether it fires.

A rule is a plain function `(payment, params) -> (triggered, reason)`; bad parameters raise, which
the caller records as "not answered" instead of failing the payment. `payment` is anything with the
payment's `id`, `user_uuid` and `amount` (a `Payment`, or the row `risk.evaluate` reads); the
rules' counts run as Core statements on the session's connection, in its transaction.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

import sqlalchemy as sa

from models import Payment, PaymentStatus, RuleKind, utcnow
from models.sessions import connection_for


class PaymentFacts(Protocol):
    id: int
    user_uuid: uuid.UUID
    amount: Decimal


Rule = Callable[[PaymentFacts, dict], tuple[bool, str]]


def _count(statement: sa.Select) -> int:
    return connection_for(Payment).scalar(statement)


def _since(params: dict) -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=int(params["window_seconds"]))


def amount(payment: PaymentFacts, params: dict) -> tuple[bool, str]:
    threshold = Decimal(str(params["threshold"]))
    return payment.amount > threshold, f"amount {payment.amount:.2f} vs threshold {threshold:.2f}"


def velocity(payment: PaymentFacts, params: dict) -> tuple[bool, str]:
    count = _count(sa.select(sa.func.count()).select_from(Payment).where(
        Payment.user_uuid == payment.user_uuid, Payment.created_at >= _since(params), Payment.id <= payment.id))
    limit = int(params["max_count"])
    return count > limit, f"{count} payments in {params['window_seconds']}s (max {limit})"


def failures(payment: PaymentFacts, params: dict) -> tuple[bool, str]:
    count = _count(sa.select(sa.func.count()).select_from(Payment).where(
        Payment.user_uuid == payment.user_uuid, Payment.status == PaymentStatus.FAILED,
        Payment.updated_at >= _since(params)))
    return count >= int(params["max_count"]), f"{count} failed payments in {params['window_seconds']}s"


def addresses(payment: PaymentFacts, params: dict) -> tuple[bool, str]:
    count = _count(sa.select(sa.func.count(sa.distinct(Payment.shipping_address))).where(
        Payment.user_uuid == payment.user_uuid, Payment.created_at >= _since(params)))
    return count > int(params["max_distinct"]), f"{count} shipping addresses in {params['window_seconds']}s"


def deny_list(payment: PaymentFacts, params: dict) -> tuple[bool, str]:
    denied = {str(u).lower() for u in params["user_uuids"]}
    hit = str(payment.user_uuid) in denied
    return hit, "user is on the deny list" if hit else "user not on the deny list"


RULES: dict[RuleKind, Rule] = {
    RuleKind.AMOUNT: amount, RuleKind.VELOCITY: velocity, RuleKind.FAILURES: failures,
    RuleKind.ADDRESSES: addresses, RuleKind.DENY_LIST: deny_list,
}
