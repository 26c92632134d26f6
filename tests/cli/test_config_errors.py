"""Bad configuration stops every command at start: one stderr line naming the key, exit code 2."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from common.cli import main
from common.settings import SettingsError

USER = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


@pytest.mark.parametrize(
    "args",
    [["serve", "orders"], ["gateway"], ["db", "upgrade"], ["token", "--user", USER], ["up"]],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_bad_value_is_one_line_naming_the_key(spawn_cli, cli_env, args):
    process = spawn_cli(*args, env={**cli_env, "ORDERS_PORT": "abc"})

    assert process.wait(timeout=30) == 2
    assert process.stderr == ["cfmp: configuration error: ORDERS_PORT: expected an integer, got 'abc'\n"]
    assert process.stdout == []


def test_a_missing_dependent_key_is_named(spawn_cli, cli_env):
    bad = {"ORDER_DB_HOST": "db.internal", "ORDER_DB_PORT": "x"}
    process = spawn_cli("serve", "orders", env={**cli_env, **bad})

    assert process.wait(timeout=30) == 2
    assert process.stderr == ["cfmp: configuration error: ORDER_DB_PORT: expected an integer, got 'x'\n"]


@pytest.mark.parametrize(
    ("service", "line"),
    [
        ("payments", "cfmp: service 'payments' is not available yet (available: orders)"),
        ("shipping", "cfmp: unknown service 'shipping' (available: orders)"),
    ],
)
def test_serving_an_unregistered_service_is_one_line(service, line, monkeypatch, tmp_path):
    monkeypatch.setattr("common.cli.apps.SERVICE_APPS", {"orders": "api.orders:create_app"})
    monkeypatch.chdir(tmp_path)  # no developer's .env in the way

    result = CliRunner().invoke(main, ["serve", service])

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [line]


def test_a_settings_error_raised_by_an_app_factory_is_one_line_too(monkeypatch, tmp_path):
    def factory(settings):
        raise SettingsError("GATEWAY_MAX_BODY: must be at least 1024, got 1")

    monkeypatch.setattr("common.cli.servers.load_factory", lambda path: factory)
    # In-process: keep the test process's root logger as it is.
    monkeypatch.setattr("common.cli.servers.configure_logging", lambda name, settings: None)
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["gateway", "--port", "0"])

    assert result.exit_code == 2
    line = "cfmp: configuration error: GATEWAY_MAX_BODY: must be at least 1024, got 1"
    assert result.stderr.splitlines() == [line]
