"""Tokens that must not be trusted: 401 at the gateway and at every service's own port.

tests/api/test_auth.py checks the usual suspects against the order service; this adds algorithm
confusion (an RS256 token, an HS256 token keyed with an RSA public key) and runs the whole list
against all three services, directly and through the gateway.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.api.test_auth import _claims, bad_tokens

PROBES = {"orders": "/api/orders/", "payments": "/api/payments/", "notifications": "/api/notifications/"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rs256_header_on_hs256(settings, claims: dict) -> str:
    head = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode())
    return head + "." + _b64(hmac.new(settings.jwt_secret.encode(), head.encode(), hashlib.sha256).digest())


def confusion_tokens(settings) -> dict[str, tuple[str, str]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = _claims(settings)
    # PyJWT refuses to HMAC with a PEM key, as a careful library should: the forgery is built by hand.
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode())
    keyed_with_public = head + "." + _b64(hmac.new(public_pem, head.encode(), hashlib.sha256).digest())
    return {
        "RS256 with the attacker's key": (jwt.encode(claims, key, algorithm="RS256"), "invalid_token"),
        "HS256 keyed with an RSA public key": (keyed_with_public, "invalid_token"),
        "RS256 header on an HS256 signature": (_rs256_header_on_hs256(settings, claims), "invalid_token"),
        "admin role claimed with a wrong secret": (
            jwt.encode({**claims, "role": "admin"}, "x" * 64, algorithm="HS256"), "invalid_token"),
        "unknown role": (jwt.encode({**claims, "role": "root"}, settings.jwt_secret, algorithm="HS256"),
                         "invalid_token"),
        "expired beyond the leeway": (jwt.encode(_claims(settings, iat=int(time.time()) - 100,
                                                         exp=int(time.time()) - 30),
                                                 settings.jwt_secret, algorithm="HS256"), "token_expired"),
    }


@pytest.mark.parametrize("via", ["gateway", "service"])
def test_untrusted_tokens_are_401_everywhere(stack, via):
    tokens = {**bad_tokens(stack.settings), **confusion_tokens(stack.settings)}
    for service, path in PROBES.items():
        api = stack.api() if via == "gateway" else stack.direct(service=service)
        for name, (token, code) in tokens.items():
            reply = api.get(path, headers={"Authorization": f"Bearer {token}"})
            assert (reply.status, reply.json["error"]) == (401, code), (service, name, reply.json)
        assert api.get(path).json["error"] == "missing_token"
        good = jwt.encode(_claims(stack.settings), stack.settings.jwt_secret, algorithm="HS256")
        assert api.get(path, headers={"Authorization": f"Bearer {good}"}).status == 200, service
