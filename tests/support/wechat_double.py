"""WeChat Pay API v3, as a test double speaking its protocol over a real socket.

It checks every request's `Authorization: WECHATPAY2-SHA256-RSA2048 ...` (mchid, serial_no, a fresh
timestamp, the SHA256withRSA signature over "METHOD\\nPATH?QUERY\\ntimestamp\\nnonce\\nbody\\n" with the
merchant's public key), keeps transactions and refunds in memory, signs every answer with the
platform private key (`Wechatpay-Timestamp/-Nonce/-Signature/-Serial`), and sends payment
notifications whose resource is AEAD_AES_256_GCM-encrypted with the APIv3 key.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.support.doubles import Answer, DoubleServer, compact, post, sign, verified

AUTH = re.compile(r'^WECHATPAY2-SHA256-RSA2048 (.+)$')
PAIR = re.compile(r'(\w+)="([^"]*)"')
QUERY = re.compile(r"^/v3/pay/transactions/out-trade-no/([0-9A-Za-z_\-|*]{6,32})\?mchid=(\w+)$")
BEIJING = dt.timezone(dt.timedelta(hours=8))


@dataclass
class Call:
    method: str
    target: str
    body: bytes
    auth: dict[str, str]
    signature_valid: bool

    @property
    def json(self) -> dict:
        return json.loads(self.body) if self.body else {}


@dataclass
class Transaction:
    out_trade_no: str
    total: int
    description: str
    notify_url: str
    transaction_id: str = field(default_factory=lambda: "4200" + secrets.token_hex(12))
    trade_state: str = "NOTPAY"
    refunds: dict[str, int] = field(default_factory=dict)  # out_refund_no -> fen


class WechatPayDouble(DoubleServer):
    def __init__(self, app_id: str, mch_id: str, merchant_serial: str, merchant_public: rsa.RSAPublicKey,
                 platform_private: rsa.RSAPrivateKey, api_v3_key: bytes):
        super().__init__()
        self.app_id, self.mch_id, self.merchant_serial = app_id, mch_id, merchant_serial
        self.merchant_public = merchant_public
        self.platform_private = platform_private
        self.api_v3_key = api_v3_key
        self.platform_serial = "PUB_KEY_ID_" + secrets.token_hex(8).upper()
        self.answer_key = platform_private  # what answers are signed with (a test may swap in another key)
        self.answer_age = 0  # seconds to backdate the answers' Wechatpay-Timestamp
        self.refund_status = "SUCCESS"
        self.transactions: dict[str, Transaction] = {}
        self.calls: list[Call] = []

    def calls_to(self, method: str, prefix: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.target.startswith(prefix)]

    # --- the API ------------------------------------------------------------------------------------
    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        auth, valid = self._authenticate(method, target, headers, body)
        with self.lock:
            self.calls.append(Call(method, target, body, auth, valid))
            if not valid:
                status, data = 401, {"code": "SIGN_ERROR", "message": "签名错误"}
            else:
                status, data = self._route(method, target, json.loads(body) if body else {})
        return self.signed_answer(status, compact(data) if data is not None else b"")

    def _authenticate(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[dict, bool]:
        match = AUTH.match(headers.get("Authorization", ""))
        auth = dict(PAIR.findall(match.group(1))) if match else {}
        message = f"{method}\n{target}\n{auth.get('timestamp')}\n{auth.get('nonce_str')}\n".encode() + body + b"\n"
        fresh = auth.get("timestamp", "").isdigit() and abs(time.time() - int(auth["timestamp"])) < 300
        valid = (auth.get("mchid") == self.mch_id and auth.get("serial_no") == self.merchant_serial and fresh
                 and verified(self.merchant_public, message, auth.get("signature")))
        return auth, valid

    def signed_answer(self, status: int, body: bytes) -> Answer:
        timestamp, nonce = str(int(time.time()) - self.answer_age), secrets.token_hex(16)
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        headers = {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": self.platform_serial,
                   "Wechatpay-Signature": sign(self.answer_key, message), "Request-ID": str(uuid.uuid4())}
        if body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        return Answer(status, body, headers)

    def _route(self, method: str, target: str, data: dict) -> tuple[int, dict | None]:
        if method == "POST" and target == "/v3/pay/transactions/native":
            return self._native(data)
        if method == "POST" and target == "/v3/refund/domestic/refunds":
            return self._refund(data)
        query = QUERY.match(target)
        if method == "GET" and query and query.group(2) == self.mch_id:
            found = self.transactions.get(query.group(1))
            if found is None:
                return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
            return 200, self.transaction(found)
        return 404, {"code": "NOT_FOUND", "message": "no such API"}

    def _native(self, data: dict) -> tuple[int, dict]:
        amount = data.get("amount") or {}
        if (data.get("appid") != self.app_id or data.get("mchid") != self.mch_id or not data.get("description")
                or not data.get("notify_url") or not isinstance(amount.get("total"), int) or amount["total"] <= 0
                or amount.get("currency", "CNY") != "CNY" or not 6 <= len(data.get("out_trade_no", "")) <= 32):
            return 400, {"code": "PARAM_ERROR", "message": "参数错误"}
        found = self.transactions.setdefault(data["out_trade_no"], Transaction(
            data["out_trade_no"], amount["total"], data["description"], data["notify_url"]))
        if found.total != amount["total"]:
            return 403, {"code": "OUT_TRADE_NO_USED", "message": "商户订单号重复"}
        return 200, {"code_url": f"weixin://wxpay/bizpayurl?pr={found.transaction_id[-10:]}"}

    def _refund(self, data: dict) -> tuple[int, dict]:
        found = self.transactions.get(data.get("out_trade_no", ""))
        amount, number = data.get("amount") or {}, data.get("out_refund_no", "")
        if found is None:
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"}
        if not number or amount.get("total") != found.total or not isinstance(amount.get("refund"), int):
            return 400, {"code": "PARAM_ERROR", "message": "参数错误"}
        if number not in found.refunds:
            if found.trade_state not in ("SUCCESS", "REFUND"):
                return 400, {"code": "INVALID_REQUEST", "message": "订单状态错误"}
            if sum(found.refunds.values()) + amount["refund"] > found.total:
                return 400, {"code": "INVALID_REQUEST", "message": "申请退款金额超过订单可退金额"}
            found.refunds[number] = amount["refund"]
            found.trade_state = "REFUND"
        return 200, {"refund_id": "5030" + number[:12], "out_refund_no": number, "out_trade_no": found.out_trade_no,
                     "channel": "ORIGINAL", "status": self.refund_status,
                     "amount": {"refund": found.refunds[number], "total": found.total, "currency": "CNY"}}

    def transaction(self, found: Transaction) -> dict:
        return {"appid": self.app_id, "mchid": self.mch_id, "out_trade_no": found.out_trade_no,
                "transaction_id": found.transaction_id, "trade_type": "NATIVE", "trade_state": found.trade_state,
                "trade_state_desc": found.trade_state, "bank_type": "OTHERS", "attach": "",
                "success_time": dt.datetime.now(BEIJING).isoformat(timespec="seconds"),
                "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                "amount": {"total": found.total, "payer_total": found.total, "currency": "CNY",
                           "payer_currency": "CNY"}}

    # --- the buyer pays; WeChat Pay notifies ------------------------------------------------------------
    def pay(self, out_trade_no: str) -> None:
        with self.lock:
            self.transactions[out_trade_no].trade_state = "SUCCESS"

    def notification(self, out_trade_no: str, *, key: rsa.RSAPrivateKey | None = None, api_v3_key: bytes | None = None,
                     age: int = 0, event_type: str = "TRANSACTION.SUCCESS", **changes) -> tuple[dict, bytes]:
        """(headers, body) of the notification about a transaction: its resource encrypted with
        `api_v3_key` (default: the merchant's), signed with `key` (default: the platform's) at a
        timestamp `age` seconds ago; `changes` alter the transaction before it is encrypted."""
        transaction = {**self.transaction(self.transactions[out_trade_no]), **changes}
        nonce = secrets.token_hex(6)  # 12 characters, as WeChat Pay sends
        ciphertext = AESGCM(api_v3_key or self.api_v3_key).encrypt(nonce.encode(), compact(transaction), b"transaction")
        body = compact({
            "id": str(uuid.uuid4()), "create_time": dt.datetime.now(BEIJING).isoformat(timespec="seconds"),
            "resource_type": "encrypt-resource", "event_type": event_type, "summary": "支付成功",
            "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                         "ciphertext": base64.b64encode(ciphertext).decode(), "associated_data": "transaction",
                         "nonce": nonce},
        })
        timestamp, sig_nonce = str(int(time.time()) - age), secrets.token_hex(16)
        signature = sign(key or self.platform_private, f"{timestamp}\n{sig_nonce}\n".encode() + body + b"\n")
        headers = {"Content-Type": "application/json", "Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": sig_nonce,
                   "Wechatpay-Signature": signature, "Wechatpay-Serial": self.platform_serial}
        return headers, body

    def notify(self, out_trade_no: str, headers: dict | None = None, body: bytes | None = None) -> Answer:
        """POST a notification (by default a fresh, correctly signed one) to the transaction's notify_url."""
        if body is None:
            headers, body = self.notification(out_trade_no)
        return post(self.transactions[out_trade_no].notify_url, body, headers)
