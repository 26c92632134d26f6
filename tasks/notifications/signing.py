"""Webhook signatures: `X-CFMP-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>`.

The timestamp is inside the signed text, so a captured request cannot be replayed later with a new
`t`; receivers refuse a `t` older than their tolerance (5 minutes here). During a secret rotation
the header carries one `v1` per live secret, the current one first: a receiver still configured
with the previous secret keeps verifying until it switches, and one with the new secret verifies
at once. A receiver verifies by recomputing the HMAC with its secret and comparing, in constant
time, against every `v1` (`verify` below is that procedure).
"""
from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-CFMP-Signature"
TOLERANCE = 300  # seconds a signature stays acceptable


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secrets: list[str], body: bytes, timestamp: int | None = None) -> str:
    """The header value for `body`, signed with each secret (the current one first)."""
    if not secrets:
        raise ValueError("a webhook needs at least one secret to be signed")
    moment = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={moment}", *(f"v1={_mac(secret, moment, body)}" for secret in secrets)])


def verify(header: str, body: bytes, secret: str, tolerance: int = TOLERANCE, now: float | None = None) -> bool:
    """True when `header` carries a fresh signature of `body` made with `secret`."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in fields if key.strip() == "t"]
    # ASCII digits only, and few: "²".isdigit() and int() of 5000 digits would raise, not refuse.
    if len(stamps) != 1 or not (stamps[0].strip().isascii() and stamps[0].strip().isdigit()
                                and len(stamps[0].strip()) <= 12):
        return False
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected.encode(), value.strip().encode())  # bytes: any text compares
               for key, value in fields if key.strip() == "v1")
