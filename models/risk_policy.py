"""Security policies: the risk rules that run for every payment, with their thresholds and weights.

Each enabled policy becomes one task of the risk chord's header (`risk.rule_<rule>`); several
policies may use the same rule with different parameters (e.g. two amount thresholds).
"""
from __future__ import annotations

import enum
import json
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, TimestampMixin, db


class RuleKind(enum.StrEnum):
    AMOUNT = "amount"  # params: threshold (decimal string)
    VELOCITY = "velocity"  # params: max_count, window_seconds (payments by the user)
    FAILURES = "failures"  # params: max_count, window_seconds (failed payments by the user)
    ADDRESSES = "addresses"  # params: max_distinct, window_seconds (shipping addresses by the user)
    DENY_LIST = "deny_list"  # params: user_uuids (list of uuids)


# Seeded when the table is empty (first use): a sensible policy set an admin can then tune.
DEFAULT_POLICIES: tuple[dict, ...] = (
    {"name": "large_amount", "rule": RuleKind.AMOUNT, "weight": 40, "params": {"threshold": "5000.00"}},
    {"name": "payment_velocity", "rule": RuleKind.VELOCITY, "weight": 30,
     "params": {"max_count": 5, "window_seconds": 600}},
    {"name": "repeated_failures", "rule": RuleKind.FAILURES, "weight": 30,
     "params": {"max_count": 3, "window_seconds": 3600}},
    {"name": "many_addresses", "rule": RuleKind.ADDRESSES, "weight": 20,
     "params": {"max_distinct": 3, "window_seconds": 86400}},
    {"name": "deny_list", "rule": RuleKind.DENY_LIST, "weight": 100, "params": {"user_uuids": []}},
)


def parse_params(text: str | None) -> dict:
    """A policy's stored parameters (JSON text) as a dict; empty when none are stored."""
    return json.loads(text or "{}")


class SecurityPolicy(TimestampMixin, db.Model):
    __tablename__ = "security_policies"
    __bind_key__ = "payments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policy_uuid: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    rule: Mapped[RuleKind]
    enabled: Mapped[bool] = mapped_column(default=True)
    weight: Mapped[int]
    params_json: Mapped[str] = mapped_column("params", sa.Text, default="{}")

    @property
    def params(self) -> dict:
        return parse_params(self.params_json)

    @params.setter
    def params(self, value: dict) -> None:
        self.params_json = json.dumps(value, sort_keys=True, default=str)
