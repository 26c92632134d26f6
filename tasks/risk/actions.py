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
from models.direct_insert import insert_new
from models.risk_policy import DEFAULT_POLICIES, parse_params
from models.sessions import connection_for
from tasks.errors import PermanentError
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


_POLICIES = sa.select(SecurityPolicy.id, SecurityPolicy.rule, SecurityPolicy.enabled).order_by(SecurityPolicy.id)


def enabled_policies() -> list[tuple[int, str]]:
    """(policy id, rule) of every enabled policy: one chord header task each. One SELECT of all
    the policies (a handful) answers both "is the table seeded?" and "which are enabled?"."""
    rows = connection_for(RiskRuleResult).execute(_POLICIES).all()
    if not rows:
        ensure_policies()
        rows = connection_for(RiskRuleResult).execute(_POLICIES).all()
    return [(policy_id, rule.value) for policy_id, rule, enabled in rows if enabled]


# What one rule needs, in one round trip: the payment's facts, the policy, and whether its result
# is already stored (a task run twice). Built once; the ids are bound per call.
_RULE_INPUT = sa.select(
    Payment.id, Payment.user_uuid, Payment.amount,
    SecurityPolicy.name, SecurityPolicy.rule, SecurityPolicy.weight, SecurityPolicy.params_json.label("params_json"),
    sa.exists().where(RiskRuleResult.payment_id == Payment.id, RiskRuleResult.policy_id == SecurityPolicy.id)
    .label("done"),
).join_from(Payment, SecurityPolicy, SecurityPolicy.id == sa.bindparam("policy_id")) \
    .where(Payment.id == sa.bindparam("payment_id"))


def evaluate(payment_id: int, policy_id: int) -> bool:
    """Run one policy's rule for one payment and store its result (once); True if this call stored it.

    A rule that raises anything but a transient error is stored as not answered; the payment is
    still decided. Statements are Core on the session's connection (one read, the rule's own query,
    one INSERT): this runs once per policy per payment, the most frequent task of a workflow.
    """
    found = connection_for(RiskRuleResult).execute(
        _RULE_INPUT, {"payment_id": payment_id, "policy_id": policy_id}).one_or_none()
    if found is None:
        raise PermanentError(f"payment {payment_id} or policy {policy_id} does not exist")
    if found.done:
        return False
    row = RiskRuleResult(payment_id=payment_id, policy_id=policy_id, policy_name=found.name, rule=found.rule.value,
                         answered=True)
    try:
        triggered, reason = RULES[found.rule](found, parse_params(found.params_json))
        row.triggered, row.score, row.reason = triggered, found.weight if triggered else 0, reason[:255]
    except RETRYABLE:
        raise
    except Exception as exc:  # a broken policy must not stop the payment: record and go on
        log.warning("risk rule %s failed for payment %s: %r", found.name, payment_id, exc)
        db.session.rollback()
        row.answered, row.reason = False, f"rule error: {exc!r}"[:255]
    try:
        insert_new(connection_for(RiskRuleResult), [row])
        db.session.commit()
    except IntegrityError:  # a concurrent run stored it first
        db.session.rollback()
        return False
    return True


def band(score: int) -> tuple[RiskLevel, RiskDecision]:
    return next((level, decision) for bound, level, decision in BANDS if score < bound)


_ASSESSMENT_ID = sa.select(RiskAssessment.id).where(RiskAssessment.payment_id == sa.bindparam("payment_id"))
_RESULTS = sa.select(RiskRuleResult.policy_id, RiskRuleResult.policy_name, RiskRuleResult.rule,
                     RiskRuleResult.answered, RiskRuleResult.triggered, RiskRuleResult.score, RiskRuleResult.reason) \
    .where(RiskRuleResult.payment_id == sa.bindparam("payment_id"))
_POLICY_NAMES = sa.select(SecurityPolicy.id, SecurityPolicy.name) \
    .where(SecurityPolicy.id.in_(sa.bindparam("policy_ids", expanding=True)))


def aggregate(payment_id: int, policy_ids: list[int]) -> int:
    """Build the payment's assessment from the rows of the policies its workflow ran; returns its id.

    Policies without an answered row are listed as not answered (by the name their row stored, or
    the policy's name when no row was stored); the score is the capped sum of the weights that fired
    among those that answered. If none answered, the payment goes to review.
    """
    connection = connection_for(RiskRuleResult)
    key = {"payment_id": payment_id}
    existing = connection.scalar(_ASSESSMENT_ID, key)
    if existing is not None:
        return existing
    rows = {row.policy_id: row for row in connection.execute(_RESULTS, key)}
    answered = [rows[p] for p in policy_ids if p in rows and rows[p].answered]
    missing = [p for p in policy_ids if p not in rows or not rows[p].answered]
    names = {policy_id: row.policy_name for policy_id, row in rows.items()}
    if unnamed := [p for p in missing if p not in names]:
        names.update(connection.execute(_POLICY_NAMES, {"policy_ids": unnamed}).all())
    not_answered = [names.get(p, str(p)) for p in missing]
    score = min(100, sum(r.score for r in answered if r.triggered))
    level, decision = band(score)
    if policy_ids and not answered:
        decision = RiskDecision.REVIEW
    reasons = {"rules": [{"policy": r.policy_name, "rule": r.rule, "triggered": r.triggered, "score": r.score,
                          "reason": r.reason} for r in answered], "not_answered": not_answered}
    assessment = RiskAssessment(payment_id=payment_id, score=score, level=level, decision=decision,
                                reasons_json=json.dumps(reasons),
                                review_status=ReviewStatus.PENDING if decision is RiskDecision.REVIEW else None)
    try:
        insert_new(connection, [assessment])
        db.session.commit()
    except IntegrityError:  # a concurrent run stored it first
        db.session.rollback()
        return connection_for(RiskRuleResult).scalar(_ASSESSMENT_ID, key)
    log.info("payment %s risk %s (%d) → %s; not answered: %s", payment_id, level, score, decision, not_answered)
    return assessment.id
