"""`cfmp token` prints a token the services accept, and rejects bad input with exit code 2."""
from __future__ import annotations

import uuid

import jwt
import pytest
from click.testing import CliRunner

from common.cli import main
from common.settings import Settings
from common.tokens import verify_token

SECRET = "a-test-secret-that-is-long-enough"
USER = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no developer's .env in the way

    def invoke(*args: str):
        return CliRunner(env={"JWT_SECRET": SECRET}).invoke(main, list(args))

    return invoke


def test_token_verifies_with_the_configured_secret(run):
    result = run("token", "--user", USER, "--role", "admin", "--ttl", "120", "--email", "a@example.com")

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    identity = verify_token(Settings.from_env({"JWT_SECRET": SECRET}, dotenv_path=None), token)
    assert (identity.user_uuid, identity.role, identity.email) == (uuid.UUID(USER), "admin", "a@example.com")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120


def test_token_defaults_to_a_user_role_for_an_hour(run):
    result = run("token", "--user", USER)

    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert (claims["role"], claims["exp"] - claims["iat"], claims["key"]) == ("user", 3600, "cfmp")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--user", "not-a-uuid"], "'not-a-uuid' is not a valid UUID"),
        (["--user", USER, "--role", "root"], "'root' is not one of 'user', 'admin'"),
        (["--user", USER, "--ttl", "0"], "0 is not in the range x>=1"),
        ([], "Missing option '--user'"),
    ],
)
def test_token_rejects_bad_input(run, args, complaint):
    result = run("token", *args)

    assert result.exit_code == 2
    assert complaint in result.stderr
    assert result.stdout == ""
