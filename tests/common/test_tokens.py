"""Issued tokens verify; everything else raises InvalidToken with the right code."""
from __future__ import annotations

import uuid

import pytest

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
