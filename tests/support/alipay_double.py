"""Alipay's open-platform gateway, as a test double speaking its protocol over a real socket.

It checks every request's RSA2 signature with the merchant's public key (the parameters sorted by
key, `k=v` joined by `&`, without `sign` and empty values), keeps trades in memory, answers
`{"<method>_response": <node>, "sign": ...}` signed over the node's exact text with Alipay's
private key (escaping `/` as Alipay's serializer does, so a verifier that re-serializes fails),
and sends signed form-encoded notifications to a trade's notify_url. As at Alipay, a precreated
trade is unknown to `alipay.trade.query` (ACQ.TRADE_NOT_EXIST) until the buyer scans its QR code.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.doubles import Answer, DoubleServer, post, sign, verified

AMOUNT = re.compile(r"^\d{1,8}\.\d{2}$")
NOT_EXIST = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在"}


@dataclass
class Call:
    """One request as the double received it."""

    params: dict[str, str]
    biz: dict
    signature_valid: bool

    @property
    def method(self) -> str:
        return self.params.get("method", "")


@dataclass
class Trade:
    out_trade_no: str
    total_amount: str
    subject: str
    notify_url: str
    trade_no: str = field(default_factory=lambda: "2024" + secrets.token_hex(12))
    status: str = "WAIT_BUYER_PAY"
    scanned: bool = False
    refunds: dict[str, str] = field(default_factory=dict)  # out_request_no -> amount

    def refunded(self) -> Decimal:
        return sum((Decimal(a) for a in self.refunds.values()), Decimal("0"))


def sign_content(params: dict[str, str], leave_out: tuple[str, ...]) -> bytes:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in leave_out and v).encode()


class AlipayDouble(DoubleServer):
    PATH = "/gateway.do"

    def __init__(self, app_id: str, merchant_public: rsa.RSAPublicKey, alipay_private: rsa.RSAPrivateKey):
        super().__init__()
        self.app_id = app_id
        self.merchant_public = merchant_public
        self.alipay_private = alipay_private
        self.answer_key = alipay_private  # what answers are signed with (a test may swap in another key)
        self.unavailable = False  # answer 503, as during an outage
        self.trades: dict[str, Trade] = {}
        self.calls: list[Call] = []

    @property
    def gateway_url(self) -> str:
        return self.url + self.PATH

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # --- the gateway --------------------------------------------------------------------------------
    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        if method != "POST" or target != self.PATH:
            return Answer(404, b"not found", {})
        if self.unavailable:
            return Answer(503, b"<html>Service Unavailable</html>", {"Content-Type": "text/html"})
        assert headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"), headers
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        valid = verified(self.merchant_public, sign_content(params, ("sign",)), params.get("sign"))
        biz = json.loads(params.get("biz_content") or "{}")
        with self.lock:
            self.calls.append(Call(params, biz, valid))
            name = params.get("method", "")
            well_formed = (params.get("app_id") == self.app_id and params.get("sign_type") == "RSA2"
                           and params.get("charset") == "utf-8" and params.get("format") == "JSON"
                           and params.get("version") == "1.0" and _timestamp_ok(params.get("timestamp", "")))
            handler = getattr(self, "_" + name.replace(".", "_"), None)
            if not valid:
                node = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature",
                        "sub_msg": "验签出错"}
            elif not well_formed or handler is None:
                node = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-parameter",
                        "sub_msg": "参数无效"}
            else:
                node = handler(params, biz)
        return Answer(200, self.signed_answer(name.replace(".", "_") + "_response", node),
                      {"Content-Type": "text/html;charset=utf-8"})

    def signed_answer(self, node_name: str, node: dict) -> bytes:
        text = json.dumps(node, ensure_ascii=False).replace("/", "\\/")  # Alipay's escaping, its spacing
        return ('{"%s":%s,"sign":"%s"}' % (node_name, text, sign(self.answer_key, text.encode()))).encode()

    def _alipay_trade_precreate(self, params: dict, biz: dict) -> dict:
        number, amount = biz.get("out_trade_no", ""), biz.get("total_amount", "")
        if not number or not AMOUNT.match(amount) or not biz.get("subject") or not params.get("notify_url"):
            return {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.missing-parameter"}
        trade = self.trades.setdefault(number, Trade(number, amount, biz["subject"], params["notify_url"]))
        if trade.total_amount != amount:
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.CONTEXT_INCONSISTENT"}
        return {"code": "10000", "msg": "Success", "out_trade_no": number,
                "qr_code": f"https://qr.alipay.com/bax{trade.trade_no[-12:]}"}

    def _alipay_trade_query(self, params: dict, biz: dict) -> dict:
        trade = self.trades.get(biz.get("out_trade_no", ""))
        if trade is None or not trade.scanned:
            return NOT_EXIST
        return {"code": "10000", "msg": "Success", "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                "buyer_logon_id": "159****5620", "trade_status": trade.status, "total_amount": trade.total_amount}

    def _alipay_trade_refund(self, params: dict, biz: dict) -> dict:
        trade = self.trades.get(biz.get("out_trade_no", ""))
        number, amount = biz.get("out_request_no", ""), biz.get("refund_amount", "")
        if trade is None:
            return NOT_EXIST
        if not number or not AMOUNT.match(amount):
            return {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.missing-parameter"}
        if number in trade.refunds:  # the same refund again: no money moves this time
            return {"code": "10000", "msg": "Success", "out_trade_no": trade.out_trade_no, "fund_change": "N",
                    "refund_fee": str(trade.refunded())}
        if trade.status not in ("TRADE_SUCCESS",):
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_STATUS_ERROR"}
        if trade.refunded() + Decimal(amount) > Decimal(trade.total_amount):
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                    "sub_msg": "退款金额超限"}
        trade.refunds[number] = amount
        return {"code": "10000", "msg": "Success", "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                "fund_change": "Y", "refund_fee": f"{trade.refunded():.2f}"}

    # --- the buyer pays; Alipay notifies ----------------------------------------------------------------
    def scan(self, out_trade_no: str) -> None:
        """The buyer scans the QR code: from now on the trade exists (WAIT_BUYER_PAY)."""
        with self.lock:
            self.trades[out_trade_no].scanned = True

    def pay(self, out_trade_no: str) -> None:
        with self.lock:
            self.trades[out_trade_no].scanned = True
            self.trades[out_trade_no].status = "TRADE_SUCCESS"

    def notification(self, out_trade_no: str, key: rsa.RSAPrivateKey | None = None, **overrides: str) -> bytes:
        """The form body Alipay POSTs about a trade, signed with `key` (default: Alipay's own);
        `overrides` change parameters before signing."""
        trade = self.trades[out_trade_no]
        now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
        params = {
            "notify_time": now, "notify_type": "trade_status_sync", "notify_id": "2024" + secrets.token_hex(16),
            "charset": "utf-8", "version": "1.0", "sign_type": "RSA2", "app_id": self.app_id,
            "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no, "trade_status": trade.status,
            "total_amount": trade.total_amount, "receipt_amount": trade.total_amount,
            "buyer_pay_amount": trade.total_amount, "subject": trade.subject, "body": "",
            "gmt_create": now, "gmt_payment": now, "buyer_logon_id": "159****5620",
            "fund_bill_list": json.dumps([{"amount": trade.total_amount, "fundChannel": "ALIPAYACCOUNT"}]),
            **overrides,
        }
        params["sign"] = sign(key or self.alipay_private, sign_content(params, ("sign", "sign_type")))
        return urlencode(params).encode()

    def notify(self, out_trade_no: str, body: bytes | None = None) -> Answer:
        """POST a notification (by default a fresh, correctly signed one) to the trade's notify_url."""
        raw = body if body is not None else self.notification(out_trade_no)
        return post(self.trades[out_trade_no].notify_url, raw,
                    {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})


def _timestamp_ok(value: str) -> bool:
    try:
        sent = dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))
    except ValueError:
        return False
    return abs((dt.datetime.now(dt.timezone.utc) - sent).total_seconds()) < 600  # Beijing time, as Alipay wants
