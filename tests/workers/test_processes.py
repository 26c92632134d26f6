"""The Celery processes as operators start them: `cfmp worker`, `cfmp beat`, `cfmp flower`,
`cfmp dead-letters`, each a real process on the real Redis, under a key prefix of its own."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import celeryconfig
from tests.cli.procs import CliProcess, group_members, http
from tests.support.waiting import wait_for
from workers.pools import POOLS, worker_argv

pytestmark = pytest.mark.usefixtures("key_prefix")  # see tests/workers/conftest.py

FLOWER_AUTH = "ops:flower-test-password"
PRODUCTION = {
    "ENV": "production", "JWT_SECRET": "s" * 64, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    **{f"{stem}_DB_URL": "sqlite:///unused.db" for stem in ("ORDER", "PAYMENT", "NOTIFICATION")},
}


def stop(process: CliProcess, timeout: float = 20) -> None:
    """SIGTERM, then: exit code 0 and nothing left of its process group (prefork children included)."""
    assert process.stop(timeout=timeout) == 0, process.transcript()
    assert group_members({process.popen.pid}) == []


def test_pool_definitions_match_the_queues_and_the_design():
    assert [queue for pool in POOLS.values() for queue in pool.queues] == list(celeryconfig.QUEUES)
    assert {name: pool.service for name, pool in POOLS.items()} == {
        "orders": "OrderWorkerPool", "payments": "PaymentWorkerPool",
        "risk": "RiskWorkerPool", "notifications": "NotificationWorkerPool"}
    argv = worker_argv(POOLS["notifications"], concurrency=3)
    assert argv[:5] == ["worker", "--queues", "notifications", "--hostname", "notifications@%h"]
    assert argv[argv.index("--pool") + 1] == "threads" and argv[argv.index("--concurrency") + 1] == "3"
    assert "--task-events" in argv
    with pytest.raises(ValueError, match="pool type"):
        worker_argv(POOLS["orders"], pool_type="gevent")


def test_an_unknown_pool_is_one_line_and_exit_2(spawn_cli, env):
    process = spawn_cli("worker", "shipping", env=env)

    assert process.wait(timeout=30) == 2
    assert process.stderr == [
        "cfmp: unknown pool 'shipping' (available: orders, payments, risk, notifications)\n"]


def test_flower_outside_development_refuses_to_start_without_basic_auth(spawn_cli, env):
    process = spawn_cli("flower", "--port", "0", env={**env, **PRODUCTION})

    assert process.wait(timeout=30) == 2
    assert len(process.stderr) == 1 and "FLOWER_BASIC_AUTH" in process.stderr[0], process.transcript()
    assert process.stdout == []


@pytest.mark.slow
def test_a_worker_consumes_its_queue_records_dead_letters_and_stops_on_sigterm(spawn_cli, migrated, client,
                                                                              tmp_path: Path):
    worker = spawn_cli("worker", "orders", env=migrated)

    done = client.send_task("orders.purge_idempotency_keys")
    assert done.get(timeout=60) == 0
    failed = client.send_task("orders.mark_paid", args=["not-a-uuid", "sandbox", "2026-01-01T00:00:00+00:00"])
    with pytest.raises(ValueError, match="badly formed hexadecimal UUID string"):
        failed.get(timeout=30)

    # A warm shutdown lets the task finish; its dead letter is written after its result (on_failure).
    stop(worker)
    log = (tmp_path / "logs" / "worker-orders.log").read_text()
    assert done.id in log and "orders@" in log

    listing = spawn_cli("dead-letters", "--domain", "orders", env=migrated)
    assert listing.wait(timeout=30) == 0, listing.transcript()
    header, line = listing.stdout
    assert header.split() == ["failed", "at", "(UTC)", "task", "task", "id", "retries", "error"]
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert re.match(rf"^{when}  orders\.mark_paid  {failed.id}  0 +ValueError\(", line)
    assert header.index("task id") == line.index(failed.id)  # aligned columns


@pytest.mark.slow
def test_flower_shows_the_four_pools_and_their_queues_behind_basic_auth(spawn_cli, env):
    env = {**env, "FLOWER_BASIC_AUTH": FLOWER_AUTH}
    for name in POOLS:
        spawn_cli("worker", name, env=env)
    flower = spawn_cli("flower", "--port", "0", env=env)
    url = flower.wait_for_line(r"^listening on (http://\S+)$", timeout=60).group(1)

    assert http(f"{url}/api/workers")[0] == 401
    assert http(f"{url}/api/workers", basic_auth="ops:wrong")[0] == 401

    def workers() -> dict:
        status, body = http(f"{url}/api/workers?refresh=1", basic_auth=FLOWER_AUTH)
        assert status == 200, body
        found = json.loads(body)
        return found if len(found) == len(POOLS) else {}

    found = wait_for(workers, timeout=60, interval=0.5, what="four workers in Flower")
    assert {name.partition("@")[0] for name in found} == set(POOLS)
    assert {name.partition("@")[0]: [queue["name"] for queue in info["active_queues"]]
            for name, info in found.items()} == {name: list(pool.queues) for name, pool in POOLS.items()}
    status, body = http(f"{url}/api/queues/length", basic_auth=FLOWER_AUTH)
    assert status == 200
    assert sorted(queue["name"] for queue in json.loads(body)["active_queues"]) == sorted(celeryconfig.QUEUES)
    orders_node = next(name for name in found if name.startswith("orders@"))
    status, body = http(f"{url}/api/worker/shutdown/{orders_node}", method="POST", basic_auth=FLOWER_AUTH)
    assert (status, b"Read only" in body) == (403, True)  # read-only by default
    stop(flower)


@pytest.mark.slow
def test_flower_behind_a_proxy_prefix_is_served_and_announced_there(spawn_cli, env):
    """APISIX serves Flower under /flower (FLOWER_URL_PREFIX): the readiness line must still come."""
    flower = spawn_cli("flower", "--port", "0", env={**env, "FLOWER_BASIC_AUTH": FLOWER_AUTH,
                                                      "FLOWER_URL_PREFIX": "flower"})
    url = flower.wait_for_line(r"listening on (http://\S+)", timeout=60).group(1)
    assert http(f"{url}/flower/healthcheck")[0] == 200
    assert http(f"{url}/flower/api/workers", basic_auth=FLOWER_AUTH)[0] == 200
    assert http(f"{url}/flower/api/workers")[0] == 401
    stop(flower)


@pytest.mark.slow
def test_beat_publishes_the_periodic_sweeps_and_is_the_only_beat(spawn_cli, env, client, tmp_path: Path):
    beat = spawn_cli("beat", env=env)
    seen: dict[str, dict] = {}

    with client.connection_for_read() as connection, connection.SimpleQueue("orders", no_ack=True) as queue:
        def published() -> bool:
            try:
                message = queue.get(timeout=0.5)
            except queue.Empty:
                return False
            seen.setdefault(message.headers["task"], message.headers)
            return {"orders.relay_outbox", "orders.expire_unpaid_orders"} <= set(seen)

        wait_for(published, timeout=45, interval=0, what="beat's periodic tasks in the orders queue")
    assert all(headers["expires"] for headers in seen.values())  # a backlog runs once, not N times

    second = spawn_cli("beat", env=env)
    assert second.wait(timeout=30) != 0
    assert "celerybeat.pid" in "".join(second.stdout + second.stderr)

    stop(beat)
    assert not (tmp_path / "var" / "celerybeat.pid").exists()


def test_a_worker_that_stops_on_an_error_exits_with_its_code(env, tmp_path: Path):
    """Celery reports a worker's failure as its exit code (here the pid lock's EX_CANTCREAT); `app.start`
    dropped it under click 8.2, so the process exited 0 and a `restart: on-failure` supervisor
    took the failure for a clean stop (found in bench.chaos: a prefork child killed at start)."""
    held = tmp_path / "held.pid"
    held.write_text(f"{os.getpid()}\n")  # a live process holds the worker's pid file
    script = "import sys; from common.cli.worker import run_celery; sys.exit(run_celery('worker-orders', sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", script, "worker", "--queues", "nobody", "--pool", "solo", "--pidfile", str(held),
         "--without-mingle", "--without-gossip"],
        env={**env, "LOG_DIR": str(tmp_path / "logs"), "VAR_DIR": str(tmp_path / "var")},
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60)
    assert done.returncode == os.EX_CANTCREAT, (done.returncode, done.stderr[-2000:])
    assert "Pidfile" in done.stderr


def test_exit_status_of_what_a_celery_command_ended_with():
    from common.cli.worker import exit_status

    assert [exit_status(None), exit_status(0), exit_status(3), exit_status("ERROR: Pidfile exists")] == [0, 0, 3, 1]
