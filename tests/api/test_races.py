"""Racing state changes leave exactly one winner, one audit entry, and 409 for the rest."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.factories import force_status, order_body

CALLS = 20


def _race(stack, token, paths):
    api = stack.api(token)
    with ThreadPoolExecutor(max_workers=CALLS) as pool:
        return list(pool.map(lambda path: api.post(path, {}), paths))


@pytest.mark.parametrize("start,calls,winner", [
    ("pending_payment", ["cancel"] * CALLS, "cancelled"),
    ("pending_payment", ["cancel", "complete"] * (CALLS // 2), "cancelled"),
    ("paid", ["complete"] * CALLS, "completed"),
])
def test_one_transition_wins(stack, buyer, seller, start, calls, winner):
    order = stack.api(buyer.token).post("/api/orders/", order_body(seller.uuid)).json
    force_status(stack, order["order_uuid"], start)
    replies = _race(stack, buyer.token, [f"/api/orders/{order['order_uuid']}/{call}/" for call in calls])
    statuses = [r.status for r in replies]
    assert statuses.count(200) == 1, statuses
    assert statuses.count(409) == CALLS - 1, statuses
    events = stack.api(buyer.token).get(f"/api/orders/{order['order_uuid']}/events/").json["results"]
    transitions = [e for e in events if e["to_status"] == winner]
    assert len(transitions) == 1
    assert stack.api(buyer.token).get(f"/api/orders/{order['order_uuid']}/").json["status"] == winner
