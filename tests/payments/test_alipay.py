"""The Alipay adapter against a double of Alipay's gateway over real HTTP: RSA2-signed requests,
verified answers and notifications, and the whole payment through the gateway on a real worker."""
from __future__ import annotations

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
    charge_request, from_now, new_order, order_status, payment_status, start_payment, wait_payment,
)
from tests.payments.test_payment_flow import events_of
from tasks.payments.providers.sandbox import SIGNATURE_HEADER, SandboxProvider
from tests.support.alipay_double import AlipayDouble
from tests.support.doubles import key_pair, settings_of
from tests.support.servers import closed_port
from tests.support.waiting import stays, wait_for

APP_ID = "2021004100000001"
CALLBACK = "/api/payments/callback/alipay/"
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Our application key pair, Alipay's (its public key as the bare base64 Alipay's console shows)
    and a stranger's."""
    root = tmp_path_factory.mktemp("alipay-keys")
    return SimpleNamespace(app=key_pair(root, "app"), alipay=key_pair(root, "alipay", bare_base64=True),
                           stranger=key_pair(root, "stranger"))


def configured(keys, double: AlipayDouble) -> dict:
    return {"alipay_app_id": APP_ID, "alipay_private_key_file": keys.app.private_file,
            "alipay_public_key_file": keys.alipay.public_file, "alipay_gateway_url": double.gateway_url}


@pytest.fixture
def double(keys):
    served = AlipayDouble(APP_ID, keys.app.public, keys.alipay.private)
    yield served
    served.stop()


@pytest.fixture
def alipay(double, keys):
    """The adapter alone, talking to the double (no database, no worker)."""
    return get_provider("alipay", Settings(env="test", payment_callback_base_url="http://127.0.0.1:9",
                                           **configured(keys, double)))


@pytest.fixture
def paying(pay, worker_app, double, keys):
    """The running system with Alipay configured (payment service and worker) against the double."""
    with settings_of([pay.apps["payments"], worker_app], **configured(keys, double)):
        yield double


# --- the adapter against the double ------------------------------------------------------------------
def test_a_charge_is_a_signed_precreate_with_the_common_parameters(alipay, double):
    request = charge_request("88.80")
    result = alipay.charge(request)
    [call] = double.calls
    assert call.signature_valid and call.method == "alipay.trade.precreate"
    assert {k: call.params[k] for k in ("app_id", "format", "charset", "sign_type", "version")} == {
        "app_id": APP_ID, "format": "JSON", "charset": "utf-8", "sign_type": "RSA2", "version": "1.0"}
    assert call.params["notify_url"] == "http://127.0.0.1:9/api/payments/callback/alipay/"
    number = uuid.UUID(request.payment_uuid).hex
    assert (call.biz["out_trade_no"], call.biz["total_amount"]) == (number, "88.80") and call.biz["subject"]
    assert call.biz["timeout_express"] == "15m"  # PAYMENT_EXPIRY (900 s) when the payment's expiry is not given
    assert result.reference == number == result.payment_data["provider_reference"]
    # Alipay escapes "/" in the signed node: the text is verified as sent, not re-serialized.
    assert result.payment_data["qr_code"].startswith("https://qr.alipay.com/bax")
    assert alipay.charge(request).reference == number and len(double.trades) == 1  # a re-run is the same trade
    alipay.charge(charge_request(expires_at=from_now(599.5)))
    assert double.calls[-1].biz["timeout_express"] == "10m"  # the QR code expires with the payment


def test_query_follows_the_trade(alipay, double):
    request = charge_request("12.34", expires_at=from_now(600))
    reference = alipay.charge(request).reference
    assert alipay.query(request, reference).state is ChargeState.PROCESSING  # not scanned yet, still payable
    double.scan(reference)
    assert alipay.query(request, reference).state is ChargeState.PROCESSING  # WAIT_BUYER_PAY
    double.pay(reference)
    status = alipay.query(request, reference)
    assert (status.state, status.amount) == (ChargeState.SUCCEEDED, Decimal("12.34"))
    double.trades[reference].status = "TRADE_CLOSED"
    assert alipay.query(request, reference).state is ChargeState.CLOSED
    assert alipay.query(request, uuid.uuid4().hex).state is ChargeState.PROCESSING  # unknown, payable a while
    gone = charge_request(expires_at=from_now(-121))  # expired (beyond the QR code's rounding): never scanned, never will be
    assert alipay.query(gone, uuid.uuid4().hex).state is ChargeState.CLOSED
    assert alipay.query(charge_request(), uuid.uuid4().hex).state is ChargeState.CLOSED  # expiry not given
    queries = double.calls_of("alipay.trade.query")
    assert len(queries) == 7 and all(c.signature_valid for c in queries)
    assert queries[0].biz == {"out_trade_no": reference}


def test_refunds_carry_their_own_request_number(alipay, double):
    request = charge_request("100.00")
    reference = alipay.charge(request).reference
    double.pay(reference)
    refund = RefundRequest(str(uuid.uuid4()), request.payment_uuid, reference, Decimal("30.00"), request.amount, "CNY",
                           "damaged")
    done = alipay.refund(refund)
    number = uuid.UUID(refund.refund_uuid).hex
    assert (done.outcome, done.reference) == (RefundOutcome.SUCCEEDED, number)
    [call] = double.calls_of("alipay.trade.refund")
    assert call.signature_valid and call.biz == {"out_trade_no": reference, "refund_amount": "30.00",
                                                 "out_request_no": number, "refund_reason": "damaged"}
    assert alipay.refund(refund).outcome is RefundOutcome.PROCESSING  # the same refund again: no money moves
    assert double.trades[reference].refunds == {number: "30.00"}
    too_much = RefundRequest(str(uuid.uuid4()), request.payment_uuid, reference, Decimal("70.01"), request.amount,
                             "CNY")
    refused = alipay.refund(too_much)
    assert refused.outcome is RefundOutcome.FAILED and "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" in refused.detail
    assert double.trades[reference].refunds == {number: "30.00"}


def test_refusals_and_unknown_outcomes(alipay, double, keys):
    with pytest.raises(ProviderRejected):
        alipay.charge(charge_request(currency="USD"))  # CNY only, refused before any call
    assert double.calls == []
    impostor = get_provider("alipay", alipay.settings.replace(alipay_private_key_file=keys.stranger.private_file))
    with pytest.raises(ProviderRejected, match="isv.invalid-signature"):
        impostor.charge(charge_request())
    assert [c.signature_valid for c in double.calls] == [False]  # the double did check our signature
    double.unavailable = True
    with pytest.raises(ProviderUnavailable, match="503"):
        alipay.charge(charge_request())
    unreachable = get_provider("alipay", alipay.settings.replace(
        alipay_gateway_url=f"http://127.0.0.1:{closed_port()}/gateway.do"))
    with pytest.raises(ProviderUnavailable):
        unreachable.charge(charge_request())


def test_an_answer_not_signed_by_alipay_is_no_answer(alipay, double, keys):
    double.answer_key = keys.stranger.private
    request = charge_request()
    with pytest.raises(ProviderUnavailable, match="not signed"):
        alipay.charge(request)
    with pytest.raises(ProviderUnavailable):
        alipay.query(request, uuid.UUID(request.payment_uuid).hex)
    assert [c.signature_valid for c in double.calls] == [True, True]  # our requests were fine


def test_notifications_are_verified_over_every_parameter(alipay, double, keys):
    reference = alipay.charge(charge_request("66.00")).reference
    double.pay(reference)
    genuine = double.notification(reference)
    event = alipay.verify_callback({}, genuine)
    assert (event.reference, event.outcome, event.amount) == (reference, Outcome.SUCCEEDED, Decimal("66.00"))
    assert event.event_id.startswith("2024")
    forged = {
        "another key": double.notification(reference, key=keys.stranger.private),
        "tampered": genuine.replace(b"total_amount=66.00", b"total_amount=6.00"),
        "another app": double.notification(reference, app_id="2021000000009999"),
        "no sign": b"&".join(p for p in genuine.split(b"&") if not p.startswith(b"sign=")),
        "not a form": b"\xff\xfe",
    }
    for name, raw in forged.items():
        with pytest.raises(InvalidCallback):
            alipay.verify_callback({}, raw)
            pytest.fail(name)
    closed = alipay.verify_callback({}, double.notification(reference, trade_status="TRADE_CLOSED"))
    assert closed.outcome is Outcome.DECLINED
    with pytest.raises(IgnoredCallback):  # a refund notice is genuine but changes no payment
        alipay.verify_callback({}, double.notification(reference, refund_fee="10.00", gmt_refund="2024-01-01"))


# --- the whole payment through the gateway -----------------------------------------------------------
def test_an_alipay_payment_pays_the_order(paying, pay, buyer, seller):
    order = new_order(pay, buyer, seller)
    payment = start_payment(pay, buyer, order, "alipay")
    processing = wait_payment(pay, buyer, payment["payment_uuid"], "processing")
    number = uuid.UUID(payment["payment_uuid"]).hex
    [call] = paying.calls_of("alipay.trade.precreate")
    assert call.signature_valid and (call.biz["out_trade_no"], call.biz["total_amount"]) == (number, "199.00")
    assert call.params["notify_url"] == f"{pay.gateway.url}{CALLBACK}"
    assert processing["payment_data"]["provider_reference"] == number
    assert processing["payment_data"]["qr_code"].startswith("https://qr.alipay.com/")
    paying.pay(number)
    acknowledged = paying.notify(number)  # over HTTP, through the gateway
    assert (acknowledged.status, acknowledged.body) == (200, b"success")
    assert acknowledged.headers["x-cfmp-callback"] == "received"
    done = wait_payment(pay, buyer, payment["payment_uuid"], "succeeded")
    assert done["paid_at"]
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "paid", what="the order paid")


def test_forged_alipay_notifications_change_nothing_and_replays_are_acknowledged(paying, pay, keys, buyer, seller):
    payment = start_payment(pay, buyer, new_order(pay, buyer, seller), "alipay")
    wait_payment(pay, buyer, payment["payment_uuid"], "processing")
    number = uuid.UUID(payment["payment_uuid"]).hex
    gateway = pay.api()
    closed = paying.notification(number, trade_status="TRADE_CLOSED")
    for raw in (paying.notification(number, trade_status="TRADE_SUCCESS", key=keys.stranger.private),
                closed.replace(b"TRADE_CLOSED", b"TRADE_SUCCESS"),
                paying.notification(number, trade_status="TRADE_SUCCESS", app_id="2021000000009999")):
        refused = gateway.post(CALLBACK, raw=raw, headers=FORM)
        assert (refused.status, refused.json["error"]) == (401, "invalid_signature")
    stays(lambda: payment_status(pay, buyer, payment["payment_uuid"]) == "processing", 0.5)
    with pay.apps["payments"].app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PaymentCallback)) == 0
    paying.pay(number)
    genuine = paying.notification(number)
    assert paying.notify(number, genuine).body == b"success"
    wait_payment(pay, buyer, payment["payment_uuid"], "succeeded")
    events = events_of(pay, payment["payment_uuid"])
    replay = gateway.post(CALLBACK, raw=genuine, headers=FORM)
    replayed = {name.lower(): value for name, value in replay.headers.items()}
    assert (replay.status, replay.raw, replayed["x-cfmp-callback"]) == (200, b"success", "duplicate")
    with pay.apps["payments"].app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PaymentCallback)) == 1
    stays(lambda: events_of(pay, payment["payment_uuid"]) == events, 0.5)


def test_an_unverifiable_precreate_answer_leaves_the_outcome_unknown_until_alipay_answers(paying, pay, keys, buyer,
                                                                                         seller):
    paying.answer_key = keys.stranger.private  # a man in the middle, or a misconfigured Alipay key
    payment = start_payment(pay, buyer, new_order(pay, buyer, seller), "alipay")
    wait_for(lambda: len(paying.calls_of("alipay.trade.precreate")) >= 2, what="the charge sent again")
    unknown = pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json
    # Unknown, not failed, and nothing of the unverified answer kept (processing: the charge may exist).
    assert unknown["status"] == "processing" and unknown["failure_reason"] is None
    assert unknown["payment_data"] == {} and not unknown["paid_at"]
    paying.answer_key = keys.alipay.private
    answered = wait_for(lambda: (p := pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json)
                        ["payment_data"].get("qr_code") and p, what="the charge answered")
    assert answered["status"] == "processing"


def test_without_settings_alipay_is_refused(pay, buyer, seller):
    order = new_order(pay, buyer, seller)
    for method in ("alipay", "wechat_pay"):
        refused = pay.api(buyer.token).post("/api/payments/", {"order_uuid": order["order_uuid"],
                                                               "payment_method": method})
        assert (refused.status, refused.json["error"]) == (422, "payment_method_unavailable")
        assert "payment_method" in refused.json["details"]
        callback = pay.api().post(f"/api/payments/callback/{method}/", raw=b"notify_id=1&sign=x", headers=FORM)
        assert (callback.status, callback.json["error"]) == (404, "provider_not_configured")
    assert pay.api(buyer.token).get("/api/payments/").json["count"] == 0


def test_a_callback_signed_by_another_provider_cannot_settle_an_alipay_payment(paying, pay, buyer, seller):
    """The sandbox's secret signs only sandbox charges: naming an Alipay trade in a sandbox callback
    (the reference is shown to the payer) is an unknown charge, and nothing changes."""
    order = new_order(pay, buyer, seller)
    payment = start_payment(pay, buyer, order, "alipay")
    wait_for(lambda: pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json["payment_data"]
             .get("qr_code"), what="the charge answered")
    sandbox = SandboxProvider(pay.settings)
    raw = sandbox.callback_body(uuid.UUID(payment["payment_uuid"]).hex, Decimal(payment["amount"]), "CNY")
    forged = pay.api().post("/api/payments/callback/sandbox/", raw=raw, headers={SIGNATURE_HEADER: sandbox.sign(raw)})
    assert (forged.status, forged.json["error"]) == (404, "unknown_charge")
    assert pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json["status"] == "processing"
    assert order_status(pay, buyer, order["order_uuid"]) == "pending_payment"
