"""Preferences through the gateway: defaults, partial PUT, checked addresses, the webhook secret
shown once and rotated, and what the fan-out makes of them."""
from __future__ import annotations

import datetime as dt

import pytest

from common.tokens import issue_token
from models import NotificationPreference
from tests.notifications.support import rows, set_preferences

DEFAULTS = {"channels": {"in_app": True, "email": False, "webhook": False}, "email_address": None,
            "webhook_url": None, "webhook_secret_set": False, "language": "zh", "updated_at": None}
PATH = "/api/notifications/preferences/"


def test_defaults_are_in_app_only_in_chinese(stack, buyer):
    assert stack.api(buyer.token).get(PATH).json == DEFAULTS
    assert rows(stack, NotificationPreference) == []  # reading saves nothing


def test_put_changes_only_what_it_names(stack, buyer):
    saved = set_preferences(stack, buyer, language="en")
    assert saved["language"] == "en" and saved["channels"] == DEFAULTS["channels"] and saved["updated_at"]
    saved = set_preferences(stack, buyer, channels={"email": True}, email_address="me@example.com")
    assert saved["channels"] == {"in_app": True, "email": True, "webhook": False} and saved["language"] == "en"
    assert stack.api(buyer.token).get(PATH).json == saved
    off = set_preferences(stack, buyer, channels={"in_app": False, "email": False})
    assert off["channels"] == {"in_app": False, "email": False, "webhook": False}
    assert off["email_address"] == "me@example.com"


@pytest.mark.parametrize("body,field", [
    ({"webhook_url": "ftp://example.com/hook"}, "webhook_url"),
    ({"webhook_url": "garbage"}, "webhook_url"),
    ({"webhook_url": "javascript:alert(1)"}, "webhook_url"),
    ({"webhook_url": "http://" + "a" * 500 + ".com/"}, "webhook_url"),
    ({"email_address": "not-an-address"}, "email_address"),
    ({"language": "fr"}, "language"),
    ({"channels": {"email": "yes"}}, "channels"),
    ({"channels": {"sms": True}}, "channels"),
    ({"colour": "blue"}, "colour"),
    ({"channels": {"webhook": True}}, "webhook_url"),
    ({"channels": {"email": True}}, "email_address"),
])
def test_invalid_preferences_are_422(stack, buyer, body, field):
    reply = stack.api(buyer.token).request("PUT", PATH, body=body)
    assert reply.status == 422, reply.json
    assert reply.json["error"] == "validation_failed" and field in reply.json["details"]
    assert rows(stack, NotificationPreference) == []  # nothing half-saved


def test_email_address_defaults_to_the_tokens_email(stack, make_user, settings):
    user = make_user()
    token = issue_token(settings, user.uuid, email="from-token@example.com")
    reply = stack.api(token).request("PUT", PATH, body={"channels": {"email": True}})
    assert reply.status == 200 and reply.json["email_address"] == "from-token@example.com"


def test_the_webhook_secret_is_shown_once_and_rotates(stack, buyer):
    first = set_preferences(stack, buyer, channels={"webhook": True}, webhook_url="https://hooks.example.com/cfmp")
    secret = first["webhook_secret"]
    assert secret.startswith("whsec_") and len(secret) == 70
    assert "webhook_secret" not in stack.api(buyer.token).get(PATH).json
    assert "webhook_secret" not in set_preferences(stack, buyer, webhook_url="http://10.0.0.7:8080/hook")
    rotated = set_preferences(stack, buyer, rotate_webhook_secret=True)
    assert rotated["webhook_secret"].startswith("whsec_") and rotated["webhook_secret"] != secret
    [saved] = rows(stack, NotificationPreference)
    now = dt.datetime.now(dt.timezone.utc)
    assert saved.signing_secrets(now) == [rotated["webhook_secret"], secret]  # both sign during the grace
    assert saved.signing_secrets(now + dt.timedelta(hours=25)) == [rotated["webhook_secret"]]
