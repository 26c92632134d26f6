"""A worker killed with SIGKILL mid-task: the message is not lost, another worker runs the task
again, and the task's effect still happens once (acks_late + reject_on_worker_lost + a unique key)."""
from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from common.settings import Settings
from tests.cli.procs import CliProcess, group_members
from tests.support.effect_tasks import CONSUMER, runs_key
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("key_prefix")]
VISIBILITY = 4  # seconds; workers then look for orphaned messages every second
ROOT = Path(__file__).resolve().parents[2]  # so the worker can import tests.support.effect_tasks


def start_worker(tmp_path, env, name: str) -> CliProcess:
    args = ["-A", "workers.celery", "worker", "-Q", "orders", "-n", f"{name}@%h", "-P", "prefork", "-c", "1",
            "-I", "tests.support.effect_tasks", "--without-mingle", "--without-gossip", "-l", "INFO"]
    return CliProcess(args, {**env, "PYTHONPATH": str(ROOT)}, tmp_path, module="celery")


def test_a_task_killed_with_its_worker_runs_again_elsewhere_with_one_effect(migrated, client, tmp_path):
    env = {**migrated, "BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY)}
    client.conf.broker_transport_options = {**client.conf.broker_transport_options, "visibility_timeout": VISIBILITY}
    first = start_worker(tmp_path, env, "first")
    second = None
    try:
        wait_for(lambda: client.control.ping(destination=[f"first@{os.uname().nodename}"], timeout=0.5),
                 timeout=30, what="the first worker")
        effect_id = str(uuid.uuid4())
        result = client.send_task("orders.testing_effect_once", args=[effect_id, 30])
        broker = redis.Redis.from_url(client.conf.broker_url)
        runs = lambda: [int(pid) for pid in broker.lrange(runs_key(client, effect_id), 0, -1)]  # noqa: E731
        [victim] = wait_for(runs, timeout=20, what="the first worker to start the task")
        assert victim in group_members({first.popen.pid})
        second = start_worker(tmp_path, env, "second")
        wait_for(lambda: client.control.ping(destination=[f"second@{os.uname().nodename}"], timeout=0.5),
                 timeout=30, what="the second worker")
        os.killpg(first.popen.pid, signal.SIGKILL)  # the whole worker: main process and child, no goodbye
        first.wait(timeout=10)
        assert result.get(timeout=VISIBILITY + 30) == "already applied"  # ran again, found the effect done
        pids = runs()
        assert len(pids) == 2 and pids[1] != victim and pids[1] in group_members({second.popen.pid})
        engine = sa.create_engine(Settings.from_env(env, dotenv_path=None).database_urls["orders"])
        with engine.connect() as connection:
            count = connection.execute(sa.text("SELECT COUNT(*) FROM order_inbox WHERE consumer = :c"),
                                       {"c": CONSUMER}).scalar()
        engine.dispose()
        assert count == 1
        broker.close()
    finally:
        for process in (first, second):
            if process is not None and not process.closed:
                process.close()
