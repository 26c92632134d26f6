"""Risk assessments of payments, and the per-rule results they are built from.

Each rule task upserts its own `RiskRuleResult` row, so `risk.aggregate` reads rows, not only chord
arguments (reference §2.3: the database is the workflow's source of truth): a rule whose row is
missing or says `answered=False` is listed as not answered and the decision is taken from the rest.
"""
from __future__ import annotations

import datetime as dt
import enum
import json
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import BigId, db, utcnow


class RiskLevel(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class RiskDecision(enum.StrEnum):
    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


class ReviewStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class RiskRuleResult(db.Model):
    __tablename__ = "risk_rule_results"
    __bind_key__ = "payments"
    __table_args__ = (sa.UniqueConstraint("payment_id", "policy_id", name="uq_risk_rule_results_payment_policy"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(sa.ForeignKey("payments.id", ondelete="CASCADE"))
    policy_id: Mapped[int] = mapped_column(sa.ForeignKey("security_policies.id", ondelete="CASCADE"), index=True)
    policy_name: Mapped[str] = mapped_column(sa.String(64))
    rule: Mapped[str] = mapped_column(sa.String(32))
    answered: Mapped[bool]
    triggered: Mapped[bool] = mapped_column(default=False)
    score: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str] = mapped_column(sa.String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RiskAssessment(db.Model):
    __tablename__ = "risk_assessments"
    __bind_key__ = "payments"
    __table_args__ = (sa.Index("ix_risk_assessments_level_decision", "level", "decision"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    assessment_uuid: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    payment_id: Mapped[int] = mapped_column(sa.ForeignKey("payments.id", ondelete="CASCADE"), unique=True)
    score: Mapped[int]
    level: Mapped[RiskLevel]
    decision: Mapped[RiskDecision]
    reasons_json: Mapped[str] = mapped_column("reasons", sa.Text)
    review_status: Mapped[ReviewStatus | None]
    reviewed_by: Mapped[uuid.UUID | None]
    reviewed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    payment = relationship("Payment", lazy="joined")

    @property
    def reasons(self) -> dict:
        """`{"rules": [{policy, rule, triggered, score, reason}], "not_answered": [policy names]}`."""
        return json.loads(self.reasons_json)
