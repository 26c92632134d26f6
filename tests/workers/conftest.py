"""Fixtures for the Celery processes as operators run them: real subprocesses on the real Redis,
each test under a key prefix of its own (deleted only after its processes are gone)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

import celeryconfig
from common.settings import Settings
from tests.cli.conftest import cli_env, key_prefix, spawn_cli  # noqa: F401  (the `cfmp` process fixtures)


@pytest.fixture
def env(cli_env: dict[str, str], redis_url: str, key_prefix: str) -> dict[str, str]:
    """Development settings on the test Redis under this test's key prefix; beat intervals of 1 s."""
    env = {key: value for key, value in cli_env.items() if not key.startswith(("FLOWER_", "CELERY_"))}
    return {**env, "ENV": "development", "CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url,
            "CELERY_KEY_PREFIX": key_prefix, "OUTBOX_RELAY_INTERVAL": "1", "ORDER_SWEEP_INTERVAL": "1",
            "LOG_LEVEL": "INFO"}


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[Celery]:
    """A Celery app on the same broker, result backend and prefix as the processes: a producer."""
    app = Celery("cfmp-test-client", set_as_current=False)
    app.config_from_object(celeryconfig.from_settings(Settings.from_env(env, dotenv_path=None)))
    yield app
    app.close()


@pytest.fixture
def migrated(spawn_cli, env: dict[str, str]) -> dict[str, str]:
    """The same environment, with the schema the tasks need (`cfmp db upgrade`, like an operator)."""
    upgrade = spawn_cli("db", "upgrade", env=env)
    assert upgrade.wait(timeout=60) == 0, upgrade.transcript()
    return env
