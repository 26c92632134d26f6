"""The WeChat Pay v3 adapter against a double of WeChat Pay over real HTTP: signed requests, verified
answers, encrypted and signed notifications, and the whole payment through the gateway."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from common.settings import Settings
from models import PaymentCallback, db
from tasks.payments.providers import (
    ChargeState, IgnoredCallback, InvalidCallback, Outcome, ProviderRejected, ProviderUnavailable,
    RefundOutcome, RefundRequest, get_provider,
)
from tests.payments.conftest import (
    charge_request, new_order, order_status, payment_status, start_payment, wait_payment,
)
from tests.payments.test_payment_flow import events_of
from tests.support.doubles import key_pair, settings_of
from tests.support.servers import closed_port
from tests.support.waiting import stays, wait_for
from tests.support.wechat_double import WechatPayDouble

APP_ID, MCH_ID, SERIAL = "wxd678efh567hg6787", "1230000109", "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
API_V3_KEY = "a7cde1ef41f14e3bb1d8f4c8a9b0c2d3"  # 32 bytes
CALLBACK = "/api/payments/callback/wechat_pay/"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """The merchant's API key pair, WeChat Pay's platform key pair and a stranger's."""
    root = tmp_path_factory.mktemp("wechat-keys")
    return SimpleNamespace(merchant=key_pair(root, "merchant"), platform=key_pair(root, "platform"),
                           stranger=key_pair(root, "stranger"))


def configured(keys, double: WechatPayDouble) -> dict:
    return {"wechat_pay_app_id": APP_ID, "wechat_pay_mch_id": MCH_ID,
            "wechat_pay_private_key_file": keys.merchant.private_file, "wechat_pay_cert_serial": SERIAL,
            "wechat_pay_platform_public_key_file": keys.platform.public_file, "wechat_pay_api_v3_key": API_V3_KEY,
            "wechat_pay_base_url": double.url}


@pytest.fixture
def double(keys):
    served = WechatPayDouble(APP_ID, MCH_ID, SERIAL, keys.merchant.public, keys.platform.private, API_V3_KEY.encode())
    yield served
    served.stop()


@pytest.fixture
def wechat(double, keys):
    """The adapter alone, talking to the double (no database, no worker)."""
    return get_provider("wechat_pay", Settings(env="test", payment_callback_base_url="http://127.0.0.1:9",
                                               **configured(keys, double)))


@pytest.fixture
def paying(pay, worker_app, double, keys):
    """The running system with WeChat Pay configured (payment service and worker) against the double."""
    with settings_of([pay.apps["payments"], worker_app], **configured(keys, double)):
        yield double


# --- the adapter against the double ------------------------------------------------------------------
def test_a_charge_is_a_signed_native_order_in_fen(wechat, double):
    request = charge_request("88.80")
    result = wechat.charge(request)
    [call] = double.calls
    assert call.signature_valid and (call.method, call.target) == ("POST", "/v3/pay/transactions/native")
    assert (call.auth["mchid"], call.auth["serial_no"]) == (MCH_ID, SERIAL) and len(call.auth["nonce_str"]) == 32
    number = uuid.UUID(request.payment_uuid).hex
    body = call.json
    assert (body["appid"], body["mchid"], body["out_trade_no"]) == (APP_ID, MCH_ID, number)
    assert body["amount"] == {"total": 8880, "currency": "CNY"} and body["description"]
    assert body["notify_url"] == "http://127.0.0.1:9/api/payments/callback/wechat_pay/"
    assert result.reference == number and result.payment_data["qr_code"].startswith("weixin://wxpay/bizpayurl?pr=")
    assert wechat.charge(request).reference == number and len(double.transactions) == 1  # a re-run is the same
    expires_at = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    wechat.charge(charge_request(expires_at=expires_at))
    assert double.calls[-1].json["time_expire"] == "2031-05-06T15:08:09+08:00"  # the QR code expires with the payment


def test_query_follows_the_transaction(wechat, double):
    request = charge_request("12.34")
    reference = wechat.charge(request).reference
    assert wechat.query(request, reference).state is ChargeState.PROCESSING  # NOTPAY
    double.transactions[reference].trade_state = "USERPAYING"
    assert wechat.query(request, reference).state is ChargeState.PROCESSING
    double.pay(reference)
    status = wechat.query(request, reference)
    assert (status.state, status.amount) == (ChargeState.SUCCEEDED, Decimal("12.34"))
    for state, expected in (("CLOSED", ChargeState.CLOSED), ("REVOKED", ChargeState.CLOSED),
                            ("PAYERROR", ChargeState.DECLINED)):
        double.transactions[reference].trade_state = state
        assert wechat.query(request, reference).state is expected
    assert wechat.query(request, uuid.uuid4().hex).state is ChargeState.CLOSED  # ORDER_NOT_EXIST
    queries = double.calls_to("GET", "/v3/pay/transactions/out-trade-no/")
    assert len(queries) == 7 and all(c.signature_valid for c in queries)
    assert queries[0].target == f"/v3/pay/transactions/out-trade-no/{reference}?mchid={MCH_ID}"


def test_refunds(wechat, double):
    request = charge_request("100.00")
    reference = wechat.charge(request).reference
    double.pay(reference)
    refund = RefundRequest(str(uuid.uuid4()), request.payment_uuid, reference, Decimal("30.00"), request.amount, "CNY",
                           "damaged")
    assert wechat.refund(refund).outcome is RefundOutcome.SUCCEEDED
    [call] = double.calls_to("POST", "/v3/refund/domestic/refunds")
    number = uuid.UUID(refund.refund_uuid).hex
    assert call.signature_valid and call.json == {
        "out_trade_no": reference, "out_refund_no": number, "reason": "damaged",
        "amount": {"refund": 3000, "total": 10000, "currency": "CNY"}}
    assert wechat.refund(refund).outcome is RefundOutcome.SUCCEEDED  # the same out_refund_no: the same refund
    assert double.transactions[reference].refunds == {number: 3000}
    too_much = RefundRequest(str(uuid.uuid4()), request.payment_uuid, reference, Decimal("70.01"), request.amount,
                             "CNY")
    refused = wechat.refund(too_much)
    assert refused.outcome is RefundOutcome.FAILED and "INVALID_REQUEST" in refused.detail
    for status, expected in (("PROCESSING", RefundOutcome.PROCESSING), ("ABNORMAL", RefundOutcome.FAILED),
                             ("CLOSED", RefundOutcome.FAILED)):
        double.refund_status = status
        assert wechat.refund(refund).outcome is expected
    assert double.transactions[reference].refunds == {number: 3000}


def test_refusals_and_unknown_outcomes(wechat, double, keys):
    with pytest.raises(ProviderRejected):
        wechat.charge(charge_request(currency="USD"))
    with pytest.raises(ProviderRejected):
        wechat.charge(charge_request("1.005"))  # no fraction of a fen
    assert double.calls == []
    impostor = get_provider("wechat_pay", wechat.settings.replace(
        wechat_pay_private_key_file=keys.stranger.private_file))
    with pytest.raises(ProviderRejected, match="SIGN_ERROR"):
        impostor.charge(charge_request())
    assert [c.signature_valid for c in double.calls] == [False]  # the double did check our signature
    unreachable = get_provider("wechat_pay", wechat.settings.replace(
        wechat_pay_base_url=f"http://127.0.0.1:{closed_port()}"))
    with pytest.raises(ProviderUnavailable):
        unreachable.charge(charge_request())


@pytest.mark.parametrize("break_answer", ["stranger's key", "stale timestamp"])
def test_an_answer_wechat_pay_did_not_sign_is_no_answer(wechat, double, keys, break_answer):
    if break_answer == "stale timestamp":
        double.answer_age = 301
    else:
        double.answer_key = keys.stranger.private
    request = charge_request()
    with pytest.raises(ProviderUnavailable, match="does not verify"):
        wechat.charge(request)
    with pytest.raises(ProviderUnavailable):
        wechat.query(request, uuid.UUID(request.payment_uuid).hex)
    assert [c.signature_valid for c in double.calls] == [True, True]  # our requests were fine


def test_notifications_are_verified_and_decrypted(wechat, double, keys):
    reference = wechat.charge(charge_request("66.00")).reference
    double.pay(reference)
    headers, body = double.notification(reference)
    event = wechat.verify_callback(headers, body)
    assert (event.reference, event.outcome, event.amount) == (reference, Outcome.SUCCEEDED, Decimal("66.00"))
    assert event.event_id == json.loads(body)["id"]
    lowered = {name.lower(): value for name, value in headers.items()}
    assert wechat.verify_callback(lowered, body) == event  # header names are case-insensitive
    forged = {
        "another key": double.notification(reference, key=keys.stranger.private),
        "stale": double.notification(reference, age=301),
        "another APIv3 key": double.notification(reference, api_v3_key=b"x" * 32),
        "another merchant": double.notification(reference, mchid="1900000999"),
        "tampered": (headers, body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCEED"')),
        "unsigned": ({"Content-Type": "application/json"}, body),
    }
    for name, (forged_headers, forged_body) in forged.items():
        with pytest.raises(InvalidCallback):
            wechat.verify_callback(forged_headers, forged_body)
            pytest.fail(name)
    declined = wechat.verify_callback(*double.notification(reference, trade_state="PAYERROR"))
    assert declined.outcome is Outcome.DECLINED
    with pytest.raises(IgnoredCallback):  # genuine, but about a refund
        wechat.verify_callback(*double.notification(reference, event_type="REFUND.SUCCESS"))


# --- the whole payment through the gateway -----------------------------------------------------------
def test_a_wechat_payment_pays_the_order(paying, pay, buyer, seller):
    order = new_order(pay, buyer, seller)
    payment = start_payment(pay, buyer, order, "wechat_pay")
    processing = wait_payment(pay, buyer, payment["payment_uuid"], "processing")
    number = uuid.UUID(payment["payment_uuid"]).hex
    [call] = paying.calls_to("POST", "/v3/pay/transactions/native")
    assert call.signature_valid and call.json["amount"] == {"total": 19900, "currency": "CNY"}
    assert call.json["out_trade_no"] == number and call.json["notify_url"] == f"{pay.gateway.url}{CALLBACK}"
    assert processing["payment_data"]["qr_code"].startswith("weixin://")
    paying.pay(number)
    acknowledged = paying.notify(number)  # over HTTP, through the gateway
    assert acknowledged.status == 200 and json.loads(acknowledged.body)["code"] == "SUCCESS"
    assert acknowledged.headers["x-cfmp-callback"] == "received"
    wait_payment(pay, buyer, payment["payment_uuid"], "succeeded")
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "paid", what="the order paid")


def test_forged_wechat_notifications_change_nothing_and_replays_are_acknowledged(paying, pay, keys, buyer, seller):
    payment = start_payment(pay, buyer, new_order(pay, buyer, seller), "wechat_pay")
    wait_payment(pay, buyer, payment["payment_uuid"], "processing")
    number = uuid.UUID(payment["payment_uuid"]).hex
    gateway = pay.api()
    paying.pay(number)
    headers, body = paying.notification(number)
    for forged_headers, forged_body in (paying.notification(number, key=keys.stranger.private),
                                        paying.notification(number, age=600),
                                        (headers, body.replace(b'"id":"', b'"id":"x'))):
        refused = gateway.post(CALLBACK, raw=forged_body, headers=forged_headers)
        assert (refused.status, refused.json["error"]) == (401, "invalid_signature")
    stays(lambda: payment_status(pay, buyer, payment["payment_uuid"]) == "processing", 0.5)
    with pay.apps["payments"].app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PaymentCallback)) == 0
    assert paying.notify(number, headers, body).status == 200
    wait_payment(pay, buyer, payment["payment_uuid"], "succeeded")
    events = events_of(pay, payment["payment_uuid"])
    replay = gateway.post(CALLBACK, raw=body, headers=headers)
    replayed = {name.lower(): value for name, value in replay.headers.items()}
    assert (replay.status, replay.json["code"], replayed["x-cfmp-callback"]) == (200, "SUCCESS", "duplicate")
    with pay.apps["payments"].app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PaymentCallback)) == 1
    stays(lambda: events_of(pay, payment["payment_uuid"]) == events, 0.5)


def test_an_unverifiable_native_answer_leaves_the_outcome_unknown_until_wechat_pay_answers(paying, pay, keys, buyer,
                                                                                          seller):
    paying.answer_key = keys.stranger.private
    payment = start_payment(pay, buyer, new_order(pay, buyer, seller), "wechat_pay")
    wait_for(lambda: len(paying.calls_to("POST", "/v3/pay/transactions/native")) >= 2, what="the charge sent again")
    unknown = pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json
    # Unknown, not failed, and nothing of the unverified answer kept (processing: the charge may exist).
    assert unknown["status"] in ("pending", "processing") and unknown["failure_reason"] is None
    assert unknown["payment_data"] == {} and not unknown["paid_at"]
    paying.answer_key = keys.platform.private
    answered = wait_for(lambda: (p := pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json)
                        ["payment_data"].get("qr_code") and p, what="the charge answered")
    assert answered["status"] == "processing"
