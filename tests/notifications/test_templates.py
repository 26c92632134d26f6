"""Templates and signatures as plain functions: every event type in both languages, reasons in
words, payment events ready for the payments service; signatures a receiver can verify."""
from __future__ import annotations

import time
import uuid

import pytest

from tasks.notifications import signing, templates

BUYER, SELLER = str(uuid.uuid4()), str(uuid.uuid4())


def event(event_type: str, **data) -> dict:
    return {"event_id": str(uuid.uuid4()), "type": event_type,
            "data": {"order_uuid": "0123456789ab", "buyer_uuid": BUYER, "seller_uuid": SELLER, **data}}


@pytest.mark.parametrize("event_type", sorted(templates.TEMPLATES))
def test_every_event_has_both_languages_for_every_role(event_type):
    for role in templates.TEMPLATES[event_type].roles:
        zh = templates.render(event(event_type, amount="5.00", currency="CNY"), role, "zh")
        en = templates.render(event(event_type, amount="5.00", currency="CNY"), role, "en")
        assert zh.title and en.title and zh.title != en.title
        assert "{" not in zh.content + en.content  # every placeholder filled


def test_order_events_concern_buyer_and_seller():
    for event_type in ("order.created", "order.paid", "order.cancelled", "order.completed"):
        assert templates.recipients(event(event_type)) == [(BUYER, "buyer"), (SELLER, "seller")]
    assert templates.recipients(event("payment.failed")) == [(BUYER, "buyer")]
    assert templates.recipients(event("order.shipped")) == []  # no template: nobody is told


def test_reasons_are_translated_and_free_text_kept():
    timeout = event("order.cancelled", reason="payment_timeout")
    assert "超时未支付" in templates.render(timeout, "buyer", "zh").content
    assert "not paid in time" in templates.render(timeout, "seller", "en").content
    own = templates.render(event("order.cancelled", reason="changed my mind"), "buyer", "en")
    assert own.content == "Order 01234567 was cancelled: changed my mind."


def test_amounts_related_ids_and_the_default_language():
    created = templates.render(event("order.created", total_amount="199.00", currency="CNY"), "seller", None)
    assert created.title == "您有新订单" and "199.00 CNY" in created.content  # no preference: Chinese
    assert created.related_id == "0123456789ab" and created.type == "transaction"
    failed = templates.render(event("payment.failed", payment_uuid="p-1", amount="9.90", reason="declined"),
                              "buyer", "en")
    assert failed.related_id == "p-1" and "declined" in failed.content and "9.90" in failed.content


def test_signatures_verify_with_either_secret_during_a_rotation():
    body = b'{"event":"x"}'
    header = signing.sign(["new-secret", "old-secret"], body)
    assert header.startswith("t=") and header.count("v1=") == 2
    assert signing.verify(header, body, "new-secret") and signing.verify(header, body, "old-secret")
    assert not signing.verify(header, body, "other-secret")
    assert not signing.verify(header, body + b" ", "new-secret")
    stale = signing.sign(["new-secret"], body, timestamp=int(time.time()) - 3600)
    assert not signing.verify(stale, body, "new-secret")
    assert not signing.verify("v1=abc", body, "new-secret")
    with pytest.raises(ValueError):
        signing.sign([], body)
