"""Risk-pool tasks: one per rule (the chord header) and the aggregate (the chord body)."""
from __future__ import annotations

from celery import shared_task

from models import RuleKind
from tasks.retries import TASK_OPTIONS, transient_retries
from tasks.risk import actions


def _rule_task(rule: RuleKind):
    """Register `risk.rule_<rule>`; header tasks keep their results (a chord needs them)."""

    @shared_task(name=f"risk.rule_{rule.value}", ignore_result=False, **TASK_OPTIONS)
    def evaluate(self, payment_id: int, policy_id: int) -> bool:
        with transient_retries(self):
            return actions.evaluate(payment_id, policy_id)

    return evaluate


RULE_TASKS = {rule: _rule_task(rule) for rule in RuleKind}


@shared_task(name="risk.aggregate", **TASK_OPTIONS)
def aggregate(self, payment_id: int, policy_ids: list[int]) -> int:
    with transient_retries(self):
        return actions.aggregate(payment_id, policy_ids)
