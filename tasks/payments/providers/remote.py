"""What the real-provider adapters (Alipay, WeChat Pay) share: their settings and keys, one HTTP call
with the failure mapping, and money in the providers' formats.

Failure mapping: a network error, a timeout, a 5xx or a 429 is `ProviderUnavailable` (the outcome
is unknown: the caller retries or reconciles, and never assumes failure); so is an answer whose
signature does not verify, since nothing in it can be trusted, not even a refusal.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from decimal import Decimal

import urllib3
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from common.settings import Settings
from tasks.payments.providers import ChargeRequest, ProviderNotConfigured, ProviderRejected, ProviderUnavailable
from tasks.payments.providers import rsa

CURRENCY = "CNY"  # both providers' domestic APIs charge in yuan only
BEIJING = dt.timezone(dt.timedelta(hours=8), "CST")  # both providers' timestamps are China Standard Time


def merchant_number(our_uuid: str) -> str:
    """Our id as the providers' merchant order or refund number (`out_trade_no`, `out_request_no`,
    `out_refund_no`): the uuid's 32 hex digits, within both providers' length and alphabet; as the
    same id always gives the same number, a re-sent request is the same charge or refund there."""
    return uuid.UUID(our_uuid).hex


def pool() -> urllib3.PoolManager:
    """The pooled HTTP client of one adapter module: short timeouts, no retries, no redirects."""
    return urllib3.PoolManager(maxsize=8, retries=False, timeout=urllib3.Timeout(connect=2, read=8))


def required(settings: Settings, provider: str, fields: Mapping[str, str]) -> dict[str, str]:
    """The values of `fields` (setting key → attribute); `ProviderNotConfigured` naming the first unset."""
    values = {attribute: getattr(settings, attribute) for attribute in fields.values()}
    for key, attribute in fields.items():
        if not values[attribute]:
            raise ProviderNotConfigured(f"{provider} is not configured: {key} is not set")
    return values


def private_key(key: str, path: str) -> RSAPrivateKey:
    try:
        return rsa.private_key_file(path)
    except rsa.BadKey as exc:
        raise ProviderNotConfigured(f"{key}: {exc}") from None


def public_key(key: str, path: str) -> RSAPublicKey:
    try:
        return rsa.public_key_file(path)
    except rsa.BadKey as exc:
        raise ProviderNotConfigured(f"{key}: {exc}") from None


def send(http: urllib3.PoolManager, provider: str, method: str, url: str, body: bytes | None,
         headers: Mapping[str, str]) -> urllib3.BaseHTTPResponse:
    """One request; `ProviderUnavailable` when there is no usable answer (network, 5xx, 429)."""
    try:
        reply = http.request(method, url, body=body, headers=dict(headers), redirect=False)
    except urllib3.exceptions.HTTPError as exc:
        raise ProviderUnavailable(f"{provider}: {method} {url} failed: {exc}") from exc
    if reply.status >= 500 or reply.status == 429:
        raise ProviderUnavailable(f"{provider}: {method} {url} answered {reply.status}")
    return reply


def yuan(amount: Decimal) -> str:
    """"199.00": Alipay's total_amount and refund_amount (a string of yuan with two places)."""
    return f"{from_cents(whole_cents(amount)):f}"


def whole_cents(amount: Decimal) -> int:
    """19900: WeChat Pay's integer amounts in fen; refuses fractions of a cent."""
    cents = amount * 100
    if cents != cents.to_integral_value() or cents <= 0:
        raise ProviderRejected(f"amount {amount} is not a positive whole number of cents")
    return int(cents)


def from_cents(cents: object) -> Decimal:
    return Decimal(int(cents)).scaleb(-2)


def expiry(settings: Settings, request: ChargeRequest) -> dt.datetime:
    """When the provider's QR code stops being payable: the payment's own expiry (else now +
    PAYMENT_EXPIRY), so a buyer cannot pay at the provider a payment we already expired."""
    if request.expires_at is None:
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=settings.payment_expiry)
    return request.expires_at if request.expires_at.tzinfo else request.expires_at.replace(tzinfo=dt.timezone.utc)


def check_currency(provider: str, currency: str) -> None:
    if currency != CURRENCY:
        raise ProviderRejected(f"{provider} charges {CURRENCY} only, not {currency}")
