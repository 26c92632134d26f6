"""Fixtures for testing `cfmp` as processes: an isolated environment and a process spawner."""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.servers import drop_keys

from .procs import CliProcess


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment, with state (SQLite files, logs) kept in this test's tmp dir."""
    return {**os.environ, "VAR_DIR": str(tmp_path / "var"), "LOG_DIR": str(tmp_path / "logs"),
            "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def spawn_cli(tmp_path: Path, cli_env: dict[str, str]) -> Iterator[Callable[..., CliProcess]]:
    """Start `cfmp` processes in tmp_path (no stray `.env`); whatever still runs is killed at teardown."""
    started: list[CliProcess] = []

    def spawn(*args: str, env: dict[str, str] | None = None) -> CliProcess:
        process = CliProcess(list(args), env or cli_env, tmp_path)
        started.append(process)
        return process

    yield spawn
    for process in started:
        if not process.closed:
            process.close()


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A CELERY_KEY_PREFIX of this test's own, its keys deleted afterwards (kombu's bindings never
    expire). Request it before `spawn_cli`, so the processes are gone before the keys are."""
    prefix = f"cfmp-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    drop_keys(redis_url, prefix)
