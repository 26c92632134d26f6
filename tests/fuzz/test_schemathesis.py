"""Schemathesis against each service's `/openapi.json`, through the gateway, with a valid token.

Every generated request (examples, boundary "coverage" cases, then Hypothesis fuzzing; valid and
invalid data) goes over real HTTP to the gateway and on to the service, with the real worker behind
them. Every response must pass schemathesis's checks: no 5xx, a documented status code, content
type and body that match the document, valid data accepted, invalid data refused, the token enforced.

Bounded and repeatable: a fixed seed, `deterministic` generation (Hypothesis `derandomize`), no
example database, `MAX_EXAMPLES` per operation in the fuzzing phase.

The documents are built when this module is imported (schemathesis 4's lazy `from_fixture` loader
does not run on pytest 9.2), from the same factories `cfmp serve` uses;
`test_the_fuzzed_documents_are_the_served_ones` checks they equal what each service serves.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pytest
import schemathesis

from api.common.openapi import build_spec
from common.cli.apps import load_factory, registered_services, service_app
from common.settings import Settings
from models.base import MAX_MONEY
from tests.conftest import BINDS

SEED = 20240607
MAX_EXAMPLES = 10
CONFIG = {
    "seed": SEED,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    # Stateful runs chain operations through links the documents do not declare.
    "phases": {"stateful": {"enabled": False}},
    # Query strings may carry parameters a service does not know: they are ignored (README, API), so
    # an unknown one is not invalid data. Bodies (POST, PUT, PATCH) still refuse unknown fields.
    "operations": [{"include-method": "GET", "generation": {"allow-extra-parameters": False}}],
}


def _document(service: str) -> dict:
    """`/openapi.json` of `service`, built without serving it (in-memory databases, nothing started)."""
    settings = Settings(env="test", database_urls={bind: "sqlite://" for bind in BINDS})
    app = load_factory(service_app(service))(settings)
    try:
        return build_spec(app)
    finally:
        app.extensions["celery"].close()


DOCUMENTS = {service: _document(service) for service in registered_services()}
SCHEMAS = {service: schemathesis.openapi.from_dict(document, config=schemathesis.Config.from_dict(CONFIG))
           for service, document in DOCUMENTS.items()}


def _order_total_within_the_cap(body: dict) -> None:
    """Σ price × quantity is at most MAX_MONEY (the `items` description says so): an order over it
    keeps its first item once."""
    try:
        total = sum(Decimal(str(item["product_price"])) * item["quantity"] for item in body["items"])
    except (KeyError, TypeError, InvalidOperation, ValueError):
        return
    if total > MAX_MONEY:
        body["items"] = [{**body["items"][0], "quantity": 1}]


def _webhook_on_with_a_url(body: dict) -> None:
    """A webhook channel that ends up on needs a URL, sent or stored (the email channel falls back
    to the token's `email` claim, which the fuzzer has): turning it on sends one, clearing the URL
    turns it off."""
    channels = body.setdefault("channels", {})
    if not isinstance(channels, dict):
        return
    if channels.get("webhook") is True and not isinstance(body.get("webhook_url"), str):
        body["webhook_url"] = "http://127.0.0.1:9/fuzz"
    elif body.get("webhook_url", "") is None:
        channels["webhook"] = False


# The rules JSON Schema cannot say (one field against another, or against what is stored), applied
# to each generated body before it is sent. Schemathesis judges a case valid or invalid after this
# hook, so an invalid case made valid here is expected to be accepted, and the reverse.
BUSINESS_RULES = {("POST", "/api/orders/"): _order_total_within_the_cap,
                  ("PUT", "/api/notifications/preferences/"): _webhook_on_with_a_url}


@schemathesis.hook
def before_call(context, case, kwargs):
    rule = BUSINESS_RULES.get((case.operation.method.upper(), case.operation.path))
    if rule is not None and isinstance(case.body, dict):
        rule(case.body)


class _Bearer:
    """The fuzzer's token on every case but those where schemathesis leaves it out or spoils it on
    purpose (then the gateway and the service must answer 401)."""

    token: str | None = None

    def get(self, case, context):
        return _Bearer.token

    def set(self, case, token, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


for _schema in SCHEMAS.values():
    _schema.auth(refresh_interval=None)(_Bearer)


@pytest.fixture(scope="module")
def bearer(fuzzer):
    _Bearer.token = fuzzer.token
    yield
    _Bearer.token = None


@schemathesis.pytest.parametrize(**SCHEMAS)
def test_api(case, fuzzer, bearer):
    case.call_and_validate(base_url=fuzzer.gateway_url)


def test_the_fuzzed_documents_are_the_served_ones(wired):
    for service, document in DOCUMENTS.items():
        assert wired.direct(service=service).get("/openapi.json").json == document, service
