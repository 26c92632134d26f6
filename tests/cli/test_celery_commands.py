"""The pieces behind `cfmp worker|beat|flower|dead-letters` that need no process: argument lists,
Flower's credentials and port check, and the dead-letter table. The processes themselves are
tested in tests/workers/test_processes.py."""
from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from common.cli import main
from common.cli.dead_letters import render
from common.cli.errors import OneLineError
from common.cli.flower import CannotListen, ensure_can_listen, flower_argv, flower_credentials
from common.cli.worker import beat_argv
from common.settings import Settings


def test_flower_credentials_come_from_the_settings_or_are_generated_only_in_development():
    assert flower_credentials(Settings(flower_basic_auth="ops:s3cret")) == ("ops:s3cret", False)

    first, generated = flower_credentials(Settings(env="development"))
    second, _ = flower_credentials(Settings(env="development"))
    assert generated and first.startswith("admin:") and len(first) > len("admin:") + 12
    assert first != second

    with pytest.raises(OneLineError, match=r"^FLOWER_BASIC_AUTH: required when ENV=test"):
        flower_credentials(Settings(env="test"))


def test_flower_runs_read_only_with_bounded_memory_and_no_credentials_in_argv():
    argv = flower_argv("127.0.0.1", 5555, read_only=True)

    assert argv[0] == "flower"
    assert {"--address=127.0.0.1", "--port=5555", "--read_only=True", "--max_tasks=10000",
            "--purge_offline_workers=300", "--persistent=False"} <= set(argv)
    assert not any("basic_auth" in arg for arg in argv)  # it goes by environment: argv is public


def test_a_taken_port_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        message = rf"^cannot listen on 127\.0\.0\.1:{port}: Address already in use$"
        with pytest.raises(CannotListen, match=message):
            ensure_can_listen("127.0.0.1", port)
    assert CannotListen.exit_code == 1


def test_beat_keeps_its_schedule_and_its_lock_under_var_dir(tmp_path: Path):
    argv = beat_argv(Settings(var_dir=str(tmp_path)))

    assert argv[0] == "beat"
    assert argv[argv.index("--schedule") + 1] == str(tmp_path / "celerybeat-schedule")
    assert argv[argv.index("--pidfile") + 1] == str(tmp_path / "celerybeat.pid")
    assert "--enable-remote-control" in argv and argv[argv.index("--hostname") + 1] == "beat@%h"


def test_dead_letters_render_as_aligned_single_lines():
    letters = [
        SimpleNamespace(failed_at=dt.datetime(2026, 5, 1, 12, 0, 5, tzinfo=dt.timezone.utc),
                        task_name="orders.mark_paid", task_id="b" * 36, retries=5,
                        error="TransientError('gateway\n  timed out')"),
        SimpleNamespace(failed_at=dt.datetime(2026, 5, 1, 11, 0), task_name="orders.relay_outbox",
                        task_id="a" * 8, retries=0, error="x" * 500),
    ]

    header, first, second = render(letters)

    assert first.startswith("2026-05-01 12:00:05  orders.mark_paid     " + "b" * 36 + "  5        ")
    assert first.endswith("TransientError('gateway timed out')")
    assert second.index("a" * 8) == header.index("task id") == first.index("b" * 36)
    assert second.endswith("…") and len(second) - second.index("xxx") == 200


def test_an_unknown_dead_letter_domain_is_one_line(tmp_path: Path):
    env = {"VAR_DIR": str(tmp_path / "var"), "LOG_DIR": str(tmp_path / "logs"), "ENV": "development"}
    result = CliRunner().invoke(main, ["dead-letters", "--domain", "shipping"], env=env)

    assert result.exit_code == 2
    from tasks.dead_letters import TABLES

    assert result.output == f"cfmp: unknown domain 'shipping' (available: {', '.join(TABLES)})\n"
