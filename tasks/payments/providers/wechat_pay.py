"""WeChat Pay API v3: Native (QR-code) charges, queries, refunds and the payment notification.

Every request carries `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=..,nonce_str=..,signature=..,
timestamp=..,serial_no=..`, the signature being base64(SHA256withRSA(merchant private key,
"METHOD\\nPATH?QUERY\\ntimestamp\\nnonce\\nbody\\n")). Every answer and every notification is signed
by WeChat Pay: `Wechatpay-Timestamp/-Nonce/-Signature/-Serial` over "timestamp\\nnonce\\nbody\\n" with
the platform key, at most 5 minutes old. An answer that does not verify is no answer
(`ProviderUnavailable`); a notification that does not is refused (`InvalidCallback`).

Our `out_trade_no` is the payment uuid's 32 hex digits (the provider reference, and WeChat Pay's
idempotency key); `out_refund_no` is the refund uuid's. A notification's `resource` is
AEAD_AES_256_GCM-encrypted with the APIv3 key and holds the transaction; its `id` is the event id.
"""
from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common.settings import Settings
from tasks.payments.providers import (
    CallbackEvent, ChargeRequest, ChargeResult, ChargeState, ChargeStatus, IgnoredCallback, InvalidCallback, Outcome,
    ProviderRejected, ProviderUnavailable, RefundOutcome, RefundRequest, RefundResult, remote, rsa,
)

NAME = "wechat_pay"
FIELDS = {"WECHAT_PAY_APP_ID": "wechat_pay_app_id", "WECHAT_PAY_MCH_ID": "wechat_pay_mch_id",
          "WECHAT_PAY_PRIVATE_KEY_FILE": "wechat_pay_private_key_file",
          "WECHAT_PAY_CERT_SERIAL": "wechat_pay_cert_serial",
          "WECHAT_PAY_PLATFORM_PUBLIC_KEY_FILE": "wechat_pay_platform_public_key_file",
          "WECHAT_PAY_API_V3_KEY": "wechat_pay_api_v3_key"}
SCHEME = "WECHATPAY2-SHA256-RSA2048"
TOLERANCE = 300  # seconds a signed answer or notification stays acceptable
TRADE_STATES = {"SUCCESS": ChargeState.SUCCEEDED, "REFUND": ChargeState.SUCCEEDED,  # paid, then (partly) refunded
                "NOTPAY": ChargeState.PROCESSING, "USERPAYING": ChargeState.PROCESSING,
                "CLOSED": ChargeState.CLOSED, "REVOKED": ChargeState.CLOSED, "PAYERROR": ChargeState.DECLINED}
REFUND_STATES = {"SUCCESS": RefundOutcome.SUCCEEDED, "PROCESSING": RefundOutcome.PROCESSING,
                 "ABNORMAL": RefundOutcome.FAILED, "CLOSED": RefundOutcome.FAILED}
NOTIFIED = {"SUCCESS": Outcome.SUCCEEDED, "PAYERROR": Outcome.DECLINED, "CLOSED": Outcome.DECLINED,
            "REVOKED": Outcome.DECLINED}
_HTTP = remote.pool()



def signed_message(*parts: str | bytes) -> bytes:
    """The text WeChat Pay signs: each part followed by a newline."""
    return b"".join((part.encode("utf-8") if isinstance(part, str) else part) + b"\n" for part in parts)


def _refusal(data: dict) -> str:
    return f"{data.get('code', '?')}: {data.get('message', '')}"


class WechatPayProvider:
    name = NAME

    def __init__(self, settings: Settings):
        values = remote.required(settings, NAME, FIELDS)
        self.settings = settings
        self.app_id, self.mch_id = values["wechat_pay_app_id"], values["wechat_pay_mch_id"]
        self.serial = values["wechat_pay_cert_serial"]
        self.api_v3_key = values["wechat_pay_api_v3_key"].encode("utf-8")
        self.private_key = remote.private_key("WECHAT_PAY_PRIVATE_KEY_FILE", values["wechat_pay_private_key_file"])
        self.platform_key = remote.public_key("WECHAT_PAY_PLATFORM_PUBLIC_KEY_FILE",
                                              values["wechat_pay_platform_public_key_file"])
        self.notify_url = f"{settings.payment_callback_base_url}/api/payments/callback/{NAME}/"

    def _unverified(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """Why WeChat Pay's signature on `body` does not hold; None when it does."""
        lowered = {key.lower(): value for key, value in headers.items()}
        timestamp, nonce, signature, serial = (lowered.get(f"wechatpay-{part}", "") for part in
                                               ("timestamp", "nonce", "signature", "serial"))
        if not (timestamp and nonce and signature and serial):
            return "missing Wechatpay-Timestamp/-Nonce/-Signature/-Serial headers"
        # ASCII digits only, and few: "²".isdigit() and int() of 5000 digits would raise, not refuse.
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or \
                abs(time.time() - int(timestamp)) > TOLERANCE:
            return f"signature timestamp {timestamp!r} outside the {TOLERANCE} s tolerance"
        if not rsa.verify(self.platform_key, signed_message(timestamp, nonce, body), signature):
            return "signature mismatch"
        return None

    # --- calls to WeChat Pay --------------------------------------------------------------------------
    def _call(self, method: str, path: str, payload: dict | None = None) -> tuple[int, dict]:
        """One signed request; the status and JSON of a verified answer (2xx or a 4xx refusal)."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() if payload is not None else b""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        signature = rsa.sign(self.private_key, signed_message(method, path, timestamp, nonce, body))
        headers = {"Authorization": f'{SCHEME} mchid="{self.mch_id}",nonce_str="{nonce}",signature="{signature}",'
                                    f'timestamp="{timestamp}",serial_no="{self.serial}"',
                   "Accept": "application/json", "User-Agent": "cfmp-order"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        reply = remote.send(_HTTP, NAME, method, self.settings.wechat_pay_base_url + path, body or None, headers)
        problem = self._unverified(reply.headers, reply.data)
        if problem is not None:
            raise ProviderUnavailable(f"wechat_pay: the answer to {method} {path} does not verify: {problem}")
        if not 200 <= reply.status < 300 and not 400 <= reply.status < 500:  # 1xx/3xx: nothing usable
            raise ProviderUnavailable(f"wechat_pay: {method} {path} answered {reply.status}")
        try:
            data = json.loads(reply.data) if reply.data else {}
        except ValueError:
            raise ProviderUnavailable(f"wechat_pay: unreadable answer to {method} {path}") from None
        return reply.status, data if isinstance(data, dict) else {}

    def charge(self, request: ChargeRequest) -> ChargeResult:
        remote.check_currency(NAME, request.currency)
        trade = remote.merchant_number(request.payment_uuid)
        expires = remote.expiry(self.settings, request).astimezone(remote.BEIJING)
        status, data = self._call("POST", "/v3/pay/transactions/native", {
            "appid": self.app_id, "mchid": self.mch_id, "description": f"CFMP payment {request.payment_uuid}",
            "out_trade_no": trade, "time_expire": expires.isoformat(timespec="seconds"),
            "notify_url": self.notify_url, "amount": {"total": remote.whole_cents(request.amount), "currency": "CNY"},
        })
        if status != 200 or not data.get("code_url"):
            raise ProviderRejected(f"wechat_pay refused the charge ({status}) {_refusal(data)}")
        return ChargeResult(trade, {"provider_reference": trade, "idempotency_key": trade, "qr_code": data["code_url"],
                                    "notify_url": self.notify_url})

    def query(self, request: ChargeRequest, reference: str) -> ChargeStatus:
        trade = reference or remote.merchant_number(request.payment_uuid)
        status, data = self._call("GET", f"/v3/pay/transactions/out-trade-no/{trade}?mchid={self.mch_id}")
        if status == 404:  # ORDER_NOT_EXIST: never created, or gone
            return ChargeStatus(ChargeState.CLOSED)
        if status != 200:
            raise ProviderRejected(f"wechat_pay refused the query ({status}) {_refusal(data)}")
        state = TRADE_STATES.get(data.get("trade_state"))
        if state is None:
            raise ProviderUnavailable(f"wechat_pay: unknown trade_state {data.get('trade_state')!r}")
        total = (data.get("amount") or {}).get("total")
        return ChargeStatus(state, remote.from_cents(total) if isinstance(total, int) else None)

    def refund(self, request: RefundRequest) -> RefundResult:
        remote.check_currency(NAME, request.currency)
        refund_no = remote.merchant_number(request.refund_uuid)
        payload = {"out_trade_no": request.provider_reference, "out_refund_no": refund_no,
                   "amount": {"refund": remote.whole_cents(request.amount),
                              "total": remote.whole_cents(request.payment_amount), "currency": "CNY"}}
        if request.reason:
            payload["reason"] = request.reason[:80]
        status, data = self._call("POST", "/v3/refund/domestic/refunds", payload)
        if status != 200:
            return RefundResult(RefundOutcome.FAILED, refund_no, _refusal(data))
        outcome = REFUND_STATES.get(data.get("status"))
        if outcome is None:
            raise ProviderUnavailable(f"wechat_pay: unknown refund status {data.get('status')!r}")
        return RefundResult(outcome, str(data.get("refund_id") or refund_no))

    # --- the payment notification -----------------------------------------------------------------------
    def verify_callback(self, headers: Mapping[str, str], raw: bytes) -> CallbackEvent:
        problem = self._unverified(headers, raw)
        if problem is not None:
            raise InvalidCallback(problem)
        try:
            body = json.loads(raw)
            event_id, event_type, resource = str(body["id"]), str(body["event_type"]), body["resource"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCallback(f"unreadable notification: {exc!r}") from None
        if not event_type.startswith("TRANSACTION."):
            raise IgnoredCallback(f"event {event_type} ({event_id})")
        transaction = self._decrypt(resource)
        if transaction.get("mchid") != self.mch_id or transaction.get("appid") != self.app_id:
            raise InvalidCallback("notification for another merchant or app")
        outcome = NOTIFIED.get(transaction.get("trade_state"))
        if outcome is None:
            raise IgnoredCallback(f"trade_state {transaction.get('trade_state')!r} ({event_id})")
        try:
            total = transaction["amount"]["total"]
            if not isinstance(total, int):
                raise TypeError(f"amount.total {total!r}")
            return CallbackEvent(event_id=event_id[:128], reference=str(transaction["out_trade_no"])[:128],
                                 outcome=outcome, amount=remote.from_cents(total))
        except (KeyError, TypeError) as exc:
            raise InvalidCallback(f"incomplete transaction: {exc!r}") from None

    def _decrypt(self, resource: object) -> dict:
        """The notification's resource, decrypted and authenticated with the APIv3 key."""
        try:
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise ValueError(f"algorithm {resource.get('algorithm')!r}")
            plain = AESGCM(self.api_v3_key).decrypt(resource["nonce"].encode("utf-8"),
                                                    base64.b64decode(resource["ciphertext"], validate=True),
                                                    (resource.get("associated_data") or "").encode("utf-8"))
            transaction = json.loads(plain)
        except (InvalidTag, ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise InvalidCallback(f"resource does not decrypt with the APIv3 key: {exc!r}") from None
        if not isinstance(transaction, dict):
            raise InvalidCallback("resource is not a transaction")
        return transaction

    def acknowledge(self, duplicate: bool) -> tuple[dict, int, dict[str, str]]:
        return {"code": "SUCCESS", "message": "OK"}, 200, {}
