"""Issued tokens verify; everything else raises InvalidToken with the right code."""
from __future__ import annotations

import time
import uuid

import pytest

from common import tokens
from common.settings import Settings
from common.tokens import InvalidToken, authenticate, bearer_token, issue_token, verify_token

SETTINGS = Settings(jwt_secret="unit-test-secret-0123456789abcdefghij")


def test_round_trip_carries_identity():
    user = uuid.uuid4()
    identity = verify_token(SETTINGS, issue_token(SETTINGS, user, role="admin", email="a@example.com"))
    assert identity.user_uuid == user and identity.is_admin and identity.email == "a@example.com"


def test_expired_token():
    with pytest.raises(InvalidToken) as error:
        verify_token(SETTINGS, issue_token(SETTINGS, uuid.uuid4(), ttl=-60))
    assert error.value.code == "token_expired"


def test_other_consumer_key_is_refused():
    token = issue_token(SETTINGS.replace(jwt_key="other"), uuid.uuid4())
    with pytest.raises(InvalidToken, match="consumer key"):
        verify_token(SETTINGS, token)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Token abc", "bearer"])
def test_bearer_header_forms(header):
    with pytest.raises(InvalidToken):
        bearer_token(header)


def test_authenticate_accepts_lowercase_scheme():
    user = uuid.uuid4()
    assert authenticate(SETTINGS, f"bearer {issue_token(SETTINGS, user)}").user_uuid == user


def test_unknown_role_cannot_be_issued():
    with pytest.raises(ValueError):
        issue_token(SETTINGS, uuid.uuid4(), role="root")


def test_a_verified_token_is_refused_once_it_expires(monkeypatch):
    """Repeats are answered from the cache of verified tokens, which re-checks the expiry each time."""
    monkeypatch.setattr(tokens, "LEEWAY", 0)
    token = issue_token(SETTINGS, uuid.uuid4(), ttl=1)
    verify_token(SETTINGS, token)
    assert verify_token(SETTINGS, token) == verify_token(SETTINGS, token)  # cached
    time.sleep(1.2)
    with pytest.raises(InvalidToken) as error:
        verify_token(SETTINGS, token)
    assert error.value.code == "token_expired"


def test_a_verified_token_is_refused_under_another_secret_or_key():
    token = issue_token(SETTINGS, uuid.uuid4())
    verify_token(SETTINGS, token)  # now cached for these settings
    with pytest.raises(InvalidToken, match="signature"):
        verify_token(SETTINGS.replace(jwt_secret="rotated-secret-0123456789abcdefghijkl"), token)
    with pytest.raises(InvalidToken, match="consumer key"):
        verify_token(SETTINGS.replace(jwt_key="rotated-key"), token)


def test_the_cache_of_verified_tokens_is_bounded(monkeypatch):
    monkeypatch.setattr(tokens, "_VERIFIED", tokens._VerifiedTokens(size=3))
    for _ in range(5):
        verify_token(SETTINGS, issue_token(SETTINGS, uuid.uuid4()))
    assert len(tokens._VERIFIED._entries) == 3
