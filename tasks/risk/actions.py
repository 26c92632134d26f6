"""Risk scoring as plain functions: evaluate one policy for one payment, aggregate the results.

Both write rows (a `RiskRuleResult` per policy, one `RiskAssessment` per payment) behind UNIQUE keys
and commit themselves, so a task run twice, or a workflow re-driven by beat, changes nothing twice.
"""
from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from models import (
    Payment, ReviewStatus, RiskAssessment, RiskDecision, RiskLevel, RiskRuleResult, SecurityPolicy, db,
)
from models.risk_policy import DEFAULT_POLICIES
from tasks.risk.rules import RULES
from tasks.retries import RETRYABLE

log = logging.getLogger(__name__)
# Score bands (upper bounds, exclusive) → level and decision.
BANDS = ((30, RiskLevel.LOW, RiskDecision.ALLOW), (60, RiskLevel.MEDIUM, RiskDecision.REVIEW),
         (90, RiskLevel.HIGH, RiskDecision.REVIEW), (101, RiskLevel.CRITICAL, RiskDecision.BLOCK))


def ensure_policies() -> None:
    """Seed the default policies on first use (an empty table); commits. Racing seeders: one wins."""
    if db.session.scalar(sa.select(sa.func.count()).select_from(SecurityPolicy)):
        return
    for policy in DEFAULT_POLICIES:
        db.session.add(SecurityPolicy(name=policy["name"], rule=policy["rule"], weight=policy["weight"],
                                      params_json=json.dumps(policy["params"], sort_keys=True)))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()


def enabled_policies() -> list[tuple[int, str]]:
    """(policy id, rule) of every enabled policy: one chord header task each."""
    ensure_policies()
    rows = db.session.execute(sa.select(SecurityPolicy.id, SecurityPolicy.rule)
                              .where(SecurityPolicy.enabled.is_(True)).order_by(SecurityPolicy.id)).all()
    return [(policy_id, rule.value) for policy_id, rule in rows]


def evaluate(payment_id: int, policy_id: int) -> bool:
    """Run one policy's rule for one payment and store its result (once). A rule that raises
    anything but a transient error is stored as not answered; the payment is still decided."""
    if db.session.scalar(sa.select(RiskRuleResult.id).where(RiskRuleResult.payment_id == payment_id,
                                                            RiskRuleResult.policy_id == policy_id)):
        return False
    payment = db.session.get(Payment, payment_id)
    policy = db.session.get(SecurityPolicy, policy_id)
    row = RiskRuleResult(payment_id=payment_id, policy_id=policy_id, policy_name=policy.name, rule=policy.rule.value,
                         answered=True)
    try:
        triggered, reason = RULES[policy.rule](payment, policy.params)
        row.triggered, row.score, row.reason = triggered, policy.weight if triggered else 0, reason[:255]
    except RETRYABLE:
        raise
    except Exception as exc:  # a broken policy must not stop the payment: record and go on
        log.warning("risk rule %s failed for payment %s: %r", policy.name, payment_id, exc)
        db.session.rollback()
        row.answered, row.reason = False, f"rule error: {exc!r}"[:255]
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent run stored it first
        db.session.rollback()
        return False
    return True


def band(score: int) -> tuple[RiskLevel, RiskDecision]:
    return next((level, decision) for bound, level, decision in BANDS if score < bound)


def aggregate(payment_id: int, policy_ids: list[int]) -> int:
    """Build the payment's assessment from the rows of the policies its workflow ran; returns its id.

    Policies without an answered row are listed as not answered; the score is the capped sum of the
    weights that fired among those that answered. If none answered, the payment goes to review.
    """
    existing = db.session.scalar(sa.select(RiskAssessment.id).where(RiskAssessment.payment_id == payment_id))
    if existing is not None:
        return existing
    rows = {r.policy_id: r for r in db.session.scalars(
        sa.select(RiskRuleResult).where(RiskRuleResult.payment_id == payment_id))}
    answered = [rows[p] for p in policy_ids if p in rows and rows[p].answered]
    names = dict(db.session.execute(sa.select(SecurityPolicy.id, SecurityPolicy.name)
                                    .where(SecurityPolicy.id.in_(policy_ids))).all())
    not_answered = [names.get(p, str(p)) for p in policy_ids if p not in rows or not rows[p].answered]
    score = min(100, sum(r.score for r in answered if r.triggered))
    level, decision = band(score)
    if policy_ids and not answered:
        decision = RiskDecision.REVIEW
    reasons = {"rules": [{"policy": r.policy_name, "rule": r.rule, "triggered": r.triggered, "score": r.score,
                          "reason": r.reason} for r in answered], "not_answered": not_answered}
    assessment = RiskAssessment(payment_id=payment_id, score=score, level=level, decision=decision,
                                reasons_json=json.dumps(reasons),
                                review_status=ReviewStatus.PENDING if decision is RiskDecision.REVIEW else None)
    db.session.add(assessment)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return db.session.scalar(sa.select(RiskAssessment.id).where(RiskAssessment.payment_id == payment_id))
    log.info("payment %s risk %s (%d) → %s; not answered: %s", payment_id, level, score, decision, not_answered)
    return assessment.id
