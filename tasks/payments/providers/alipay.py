"""Alipay open platform (RSA2): QR-code charges, queries, refunds and the asynchronous notification.

Requests are form POSTs to `ALIPAY_GATEWAY_URL` with the common parameters (app_id, method,
format=JSON, charset=utf-8, sign_type=RSA2, timestamp in Beijing time, version=1.0, notify_url,
biz_content as JSON) and `sign` = base64(SHA256withRSA(our application private key, the parameters
sorted by key as `k=v` joined by `&`, leaving out `sign` and empty values)). Answers look like
`{"alipay_trade_precreate_response": {...}, "sign": "..."}`, the sign made by Alipay over the exact
text of the response node; an answer that does not verify is no answer (`ProviderUnavailable`).

Our `out_trade_no` is the payment uuid's 32 hex digits: the provider reference, and Alipay's
idempotency key (a re-sent precreate is the same trade). Refunds use the refund uuid's hex as
`out_request_no`. Notifications are form-encoded, signed over every parameter but `sign` and
`sign_type`; Alipay resends until it reads the literal body `success`.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl, urlencode

from common.settings import Settings
from tasks.payments.providers import (
    CallbackEvent, ChargeRequest, ChargeResult, ChargeState, ChargeStatus, IgnoredCallback, InvalidCallback, Outcome,
    ProviderRejected, ProviderUnavailable, RefundOutcome, RefundRequest, RefundResult, remote, rsa,
)

NAME = "alipay"
FIELDS = {"ALIPAY_APP_ID": "alipay_app_id", "ALIPAY_PRIVATE_KEY_FILE": "alipay_private_key_file",
          "ALIPAY_PUBLIC_KEY_FILE": "alipay_public_key_file"}
SUCCESS, UNAVAILABLE, BUSINESS_FAILURE = "10000", "20000", "40004"
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
# A precreated trade exists at Alipay only once its QR code is scanned; until the code expires (it is
# valid to the minute, rounded up) "does not exist" may still become a payment.
NOT_SCANNED_GRACE = dt.timedelta(seconds=120)
TRADE_STATES = {"WAIT_BUYER_PAY": ChargeState.PROCESSING, "TRADE_SUCCESS": ChargeState.SUCCEEDED,
                "TRADE_FINISHED": ChargeState.SUCCEEDED, "TRADE_CLOSED": ChargeState.CLOSED}
NOTIFIED = {"TRADE_SUCCESS": Outcome.SUCCEEDED, "TRADE_FINISHED": Outcome.SUCCEEDED, "TRADE_CLOSED": Outcome.DECLINED}
REFUND_FIELDS = ("gmt_refund", "out_biz_no", "refund_fee")  # present only in notifications about a refund
_HTTP = remote.pool()
_SPACE = re.compile(r"[ \t\n\r]*")



def sign_content(params: Mapping[str, str], leave_out: tuple[str, ...] = ("sign",)) -> bytes:
    """What Alipay signs: the parameters sorted by key, `k=v` joined by `&`, without `leave_out` and
    without empty values."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in leave_out and v != "").encode("utf-8")


def top_level_members(text: str) -> dict[str, tuple[str, object]]:
    """Each top-level member of a JSON object: name → (its exact source text, its value).

    Alipay signs the response node's text as sent (escapes, spacing and order included), so the
    text is cut out of the answer, never re-serialized."""
    decoder = json.JSONDecoder()
    pos = _SPACE.match(text).end()
    if text[pos:pos + 1] != "{":
        raise ValueError("not a JSON object")
    pos = _SPACE.match(text, pos + 1).end()
    members: dict[str, tuple[str, object]] = {}
    if text[pos:pos + 1] == "}":
        return members
    while True:
        name, pos = decoder.raw_decode(text, pos)
        pos = _SPACE.match(text, pos).end()
        if not isinstance(name, str) or text[pos:pos + 1] != ":":
            raise ValueError(f"expected a member name and ':' at {pos}")
        start = _SPACE.match(text, pos + 1).end()
        value, pos = decoder.raw_decode(text, start)
        members[name] = (text[start:pos], value)
        pos = _SPACE.match(text, pos).end()
        if text[pos:pos + 1] == "}":
            return members
        if text[pos:pos + 1] != ",":
            raise ValueError(f"expected ',' or '}}' at {pos}")
        pos = _SPACE.match(text, pos + 1).end()


def _refusal(node: dict) -> str:
    return f"{node.get('code')} {node.get('sub_code', '')}: {node.get('sub_msg') or node.get('msg', '')}".strip()


class AlipayProvider:
    name = NAME

    def __init__(self, settings: Settings):
        values = remote.required(settings, NAME, FIELDS)
        self.settings = settings
        self.app_id = values["alipay_app_id"]
        self.private_key = remote.private_key("ALIPAY_PRIVATE_KEY_FILE", values["alipay_private_key_file"])
        self.alipay_key = remote.public_key("ALIPAY_PUBLIC_KEY_FILE", values["alipay_public_key_file"])
        self.notify_url = f"{settings.payment_callback_base_url}/api/payments/callback/{NAME}/"

    # --- calls to Alipay ------------------------------------------------------------------------------
    def _call(self, method: str, biz: dict, **extra: str) -> dict:
        """POST one signed request; the verified response node (any code but 20000 / a system error)."""
        params = {"app_id": self.app_id, "method": method, "format": "JSON", "charset": "utf-8", "sign_type": "RSA2",
                  "timestamp": dt.datetime.now(remote.BEIJING).strftime("%Y-%m-%d %H:%M:%S"), "version": "1.0",
                  "biz_content": json.dumps(biz, separators=(",", ":"), ensure_ascii=False), **extra}
        params["sign"] = rsa.sign(self.private_key, sign_content(params))
        reply = remote.send(_HTTP, NAME, "POST", self.settings.alipay_gateway_url, urlencode(params).encode("ascii"),
                            {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
        if reply.status != 200:
            raise ProviderUnavailable(f"alipay: {method} answered HTTP {reply.status}")
        try:
            members = top_level_members(reply.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProviderUnavailable(f"alipay: unreadable answer to {method}: {exc}") from None
        text, node = members.get(method.replace(".", "_") + "_response") or members.get("error_response") or ("", None)
        signature = members.get("sign", ("", None))[1]
        if not isinstance(node, dict) or not isinstance(signature, str) or not rsa.verify(
                self.alipay_key, text.encode("utf-8"), signature):
            raise ProviderUnavailable(f"alipay: the answer to {method} is not signed by Alipay's key")
        if node.get("code") == UNAVAILABLE or str(node.get("sub_code", "")).endswith("SYSTEM_ERROR"):
            raise ProviderUnavailable(f"alipay: {method} {_refusal(node)}")
        return node

    def charge(self, request: ChargeRequest) -> ChargeResult:
        remote.check_currency(NAME, request.currency)
        trade = remote.merchant_number(request.payment_uuid)
        remaining = remote.expiry(self.settings, request) - dt.datetime.now(dt.timezone.utc)
        node = self._call("alipay.trade.precreate", {
            "out_trade_no": trade, "total_amount": remote.yuan(request.amount),
            "subject": f"CFMP payment {request.payment_uuid}",
            "timeout_express": f"{max(1, math.ceil(remaining.total_seconds() / 60))}m",  # to the minute, rounded up
        }, notify_url=self.notify_url)
        if node.get("code") != SUCCESS or not node.get("qr_code"):
            raise ProviderRejected(f"alipay refused the charge: {_refusal(node)}")
        return ChargeResult(trade, {"provider_reference": trade, "idempotency_key": trade, "qr_code": node["qr_code"],
                                    "notify_url": self.notify_url})

    def query(self, request: ChargeRequest, reference: str) -> ChargeStatus:
        node = self._call("alipay.trade.query", {"out_trade_no": reference or remote.merchant_number(request.payment_uuid)})
        if node.get("code") == BUSINESS_FAILURE and node.get("sub_code") == TRADE_NOT_EXIST:
            # Not scanned (yet): still payable until the QR code expires, when the payment's expiry is known.
            payable = request.expires_at is not None and (
                dt.datetime.now(dt.timezone.utc) < remote.expiry(self.settings, request) + NOT_SCANNED_GRACE)
            return ChargeStatus(ChargeState.PROCESSING if payable else ChargeState.CLOSED)
        if node.get("code") != SUCCESS:
            raise ProviderRejected(f"alipay refused the query: {_refusal(node)}")
        state = TRADE_STATES.get(node.get("trade_status"))
        if state is None:
            raise ProviderUnavailable(f"alipay: unknown trade_status {node.get('trade_status')!r}")
        try:
            return ChargeStatus(state, Decimal(str(node["total_amount"])) if "total_amount" in node else None)
        except InvalidOperation:
            raise ProviderUnavailable(f"alipay: unreadable total_amount {node['total_amount']!r}") from None

    def refund(self, request: RefundRequest) -> RefundResult:
        remote.check_currency(NAME, request.currency)
        request_no = remote.merchant_number(request.refund_uuid)
        biz = {"out_trade_no": request.provider_reference, "refund_amount": remote.yuan(request.amount),
               "out_request_no": request_no}
        if request.reason:
            biz["refund_reason"] = request.reason[:256]
        node = self._call("alipay.trade.refund", biz)
        if node.get("code") != SUCCESS:
            return RefundResult(RefundOutcome.FAILED, request_no, _refusal(node))
        # fund_change=N: no money moved by this call (e.g. still in progress): ask again later.
        outcome = RefundOutcome.SUCCEEDED if node.get("fund_change") == "Y" else RefundOutcome.PROCESSING
        return RefundResult(outcome, request_no)

    # --- the asynchronous notification ----------------------------------------------------------------
    def verify_callback(self, headers: Mapping[str, str], raw: bytes) -> CallbackEvent:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidCallback(f"not a form-encoded notification: {exc}") from None
        params = dict(pairs)
        if len(params) != len(pairs):
            raise InvalidCallback("a parameter is repeated")
        if params.get("sign_type") != "RSA2" or not params.get("sign"):
            raise InvalidCallback("missing sign or sign_type other than RSA2")
        if not rsa.verify(self.alipay_key, sign_content(params, ("sign", "sign_type")), params["sign"]):
            raise InvalidCallback("signature mismatch")
        if params.get("app_id") != self.app_id:
            raise InvalidCallback(f"notification for another app_id {params.get('app_id')!r}")
        if any(params.get(key) for key in REFUND_FIELDS):
            raise IgnoredCallback(f"refund notice for {params.get('out_trade_no')}")
        outcome = NOTIFIED.get(params.get("trade_status", ""))
        if outcome is None:
            raise IgnoredCallback(f"trade_status {params.get('trade_status')!r} of {params.get('out_trade_no')}")
        try:
            return CallbackEvent(event_id=params["notify_id"][:128], reference=params["out_trade_no"][:128],
                                 outcome=outcome, amount=Decimal(params["total_amount"]))
        except (KeyError, InvalidOperation) as exc:
            raise InvalidCallback(f"incomplete notification: {exc!r}") from None

    def acknowledge(self, duplicate: bool) -> tuple[str, int, dict[str, str]]:
        """Alipay stops resending only on this literal body."""
        return "success", 200, {"Content-Type": "text/plain; charset=utf-8"}
