"""Fixtures for the registry tests: a Nacos double on a real socket with a clock the test moves."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.registry import Backoff
from common.settings import Settings
from tests.cli.conftest import cli_env, key_prefix, spawn_cli  # noqa: F401  (the `cfmp` process fixtures)
from tests.support.nacos_double import FakeClock, NacosDouble
from tests.workers.conftest import client, env  # noqa: F401  (workers on the test Redis)

FAST = Backoff(base=0.05, cap=0.2)  # retries while Nacos is away, in tests
BEAT_MS = 50  # clientBeatInterval the double asks for: beats every 50 ms instead of 5 s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def nacos(clock: FakeClock) -> Iterator[NacosDouble]:
    double = NacosDouble(clock=clock, beat_interval_ms=BEAT_MS)
    yield double
    double.stop()


@pytest.fixture
def registry_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings naming a Nacos double (and whatever else the test changes)."""

    def make(double: NacosDouble | str, **changes: object) -> Settings:
        address = double if isinstance(double, str) else double.address
        return Settings(env="test", nacos_server=address, log_dir=str(tmp_path / "logs")).replace(**changes)

    return make
