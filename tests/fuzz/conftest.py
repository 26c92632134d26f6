"""The world the fuzzer runs in: the real stack (services and gateway over HTTP, a real worker) with
one user who owns a paid order, a refund, notifications and deliveries, so list answers have rows
whose shape the response schemas are checked against."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from common.tokens import issue_token
from tests.conftest import MYSQL_URL
from tests.payments.conftest import paid_order, refunds_of, wired  # noqa: F401  (`wired` is a fixture)
from tests.support.waiting import wait_for


@dataclass(frozen=True)
class Person:
    uuid: uuid.UUID
    token: str


@dataclass(frozen=True)
class Fuzzer:
    gateway_url: str
    token: str


def pytest_collection_modifyitems(config, items):
    """The fuzz runs once per test run: with MariaDB here, its SQLite copies are deselected (not
    collected as skips); without MariaDB the SQLite ones are all there is."""
    if MYSQL_URL is None:
        return
    fuzz_dir = str(config.rootpath / "tests" / "fuzz")
    dropped = [item for item in items if str(item.path).startswith(fuzz_dir) and item.nodeid.endswith("[sqlite]")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [item for item in items if item not in gone]


@pytest.fixture(scope="module")
def fuzzer(backend, request) -> Fuzzer:
    """An admin (so the risk endpoints answer too) with one of everything; the stack is emptied after.

    The fuzz runs once per test run, on MariaDB when there is one (strict column types and lengths,
    utf8mb4: where hostile input breaks first), else on SQLite, to keep its time bounded.
    """
    stack, settings = request.getfixturevalue("wired"), request.getfixturevalue("settings")
    request.getfixturevalue("worker")
    me, seller = uuid.uuid4(), uuid.uuid4()
    me = Person(me, issue_token(settings, me, role="admin", ttl=600, email="fuzzer@example.com"))
    seller = Person(seller, issue_token(settings, seller))
    api = stack.api(me.token)
    _, payment = paid_order(stack, me, seller, price="100.00")
    paid = payment["payment_uuid"]
    reply = api.post(f"/api/payments/{paid}/refund/", {"amount": "10.00", "reason": "fuzz"})
    assert reply.status == 202, reply.json
    wait_for(lambda: [r for r in refunds_of(stack, me, paid) if r["status"] == "succeeded"],
             what="the refund settled")
    wait_for(lambda: api.get("/api/notifications/deliveries/").json["count"] >= 2, what="deliveries recorded")
    yield Fuzzer(stack.gateway.url, me.token)
    stack.truncate()
