"""The shared failure policy on a real worker: transient errors retried with growing delays,
permanent ones not retried, and both kinds of final failure dead-lettered."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from celery.exceptions import CeleryError

from models import OrderDeadLetter, db
from tests.support.test_tasks import ATTEMPTS
from tests.support.waiting import wait_for


def dead_letter(stack, task_id: str):
    with stack.orders_app.app_context():
        row = db.session.scalars(sa.select(OrderDeadLetter).where(OrderDeadLetter.task_id == task_id)).first()
        db.session.expunge_all()
        return row


def test_transient_errors_are_retried_with_growing_delays(stack, worker):
    key = uuid.uuid4().hex
    result = worker.send_task("orders.testing_flaky", args=[key, 3])
    assert result.get(timeout=20) == 4
    times = ATTEMPTS[key]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert len(gaps) == 3
    assert all(0.09 <= gap for gap in gaps), gaps  # a countdown was honoured
    assert all(b >= a - 0.05 for a, b in zip(gaps, gaps[1:])), gaps  # and it grows
    assert gaps[-1] > gaps[0]
    assert dead_letter(stack, result.id) is None


def test_exhausted_retries_land_in_the_dead_letters(stack, worker):
    key = uuid.uuid4().hex
    result = worker.send_task("orders.testing_exhausted", args=[key])
    with pytest.raises(Exception, match="still down") as error:
        result.get(timeout=20)
    assert not isinstance(error.value, CeleryError)
    assert len(ATTEMPTS[key]) == 3  # the first try and max_retries=2
    letter = wait_for(lambda: dead_letter(stack, result.id), what="the dead letter")  # written after the result
    assert letter.task_name == "orders.testing_exhausted" and letter.retries == 2
    assert "still down" in letter.error and key in letter.args


def test_a_permanent_error_is_not_retried_and_is_dead_lettered(stack, worker):
    key = uuid.uuid4().hex
    result = worker.send_task("orders.testing_permanent", args=[key])
    with pytest.raises(Exception, match="card declined"):
        result.get(timeout=20)
    assert len(ATTEMPTS[key]) == 1
    letter = wait_for(lambda: dead_letter(stack, result.id), what="the dead letter")
    assert letter.retries == 0 and "PermanentError" in letter.error
