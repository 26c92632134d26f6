"""Worker pools register from the main worker process with their metadata and the port of their
`/health` endpoint, beat while their consumer consumes, go unhealthy when it is stuck although the
process lives, and deregister on shutdown. Real `cfmp worker` / `celery worker` processes on the
real Redis, against the Nacos double."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from common.registry import version
from tests.cli.procs import CliProcess, group_members, http
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("key_prefix")]
ROOT = Path(__file__).resolve().parents[2]  # so a worker can import tests.support.stall
NODE = os.uname().nodename


def health(port: int) -> tuple[int, dict]:
    status, body = http(f"http://127.0.0.1:{port}/health", timeout=5)
    return status, json.loads(body)


def stop(process: CliProcess) -> None:
    assert process.stop(timeout=30) == 0, process.transcript()
    assert group_members({process.popen.pid}) == []


def test_a_pool_registers_with_its_metadata_keeps_beating_and_deregisters(spawn_cli, env, nacos):
    worker = spawn_cli("worker", "orders", "-c", "1", env={**env, "NACOS_SERVER": nacos.address})

    [host] = wait_for(lambda: nacos.hosts("OrderWorkerPool"), timeout=60, what="OrderWorkerPool registered")
    assert host["ip"] == "127.0.0.1" and host["healthy"]
    assert host["metadata"] == {
        "kind": "worker-pool", "pool": "orders", "queues": "orders", "concurrency": "1", "pool_type": "prefork",
        "celery_hostname": f"orders@{NODE}", "version": version(), "health_path": "/health"}
    status, answer = health(host["port"])  # the registered port is the worker's own, and it answers
    assert status == 200 and answer["status"] == "ok" and answer["celery_hostname"] == f"orders@{NODE}"
    wait_for(lambda: nacos.beats("OrderWorkerPool") >= 5, timeout=15, what="beats")
    assert [name for name in nacos.services()] == ["OrderWorkerPool"]  # prefork children register nothing

    stop(worker)
    assert nacos.hosts("OrderWorkerPool") == []
    assert nacos.count("DELETE", "/nacos/v1/ns/instance") == 1


def test_a_pool_whose_consumer_is_stuck_goes_unhealthy_and_recovers(env, nacos, clock, client, tmp_path):
    args = ["-A", "workers.celery", "worker", "-Q", "notifications", "-n", "stuck@%h", "-P", "threads", "-c", "2",
            "-I", "tests.support.stall", "--without-mingle", "--without-gossip", "-l", "INFO"]
    worker = CliProcess(args, {**env, "NACOS_SERVER": nacos.address, "PYTHONPATH": str(ROOT)}, tmp_path,
                        module="celery")
    try:
        # Named by its queues, since its node name names no pool.
        [host] = wait_for(lambda: nacos.hosts("NotificationWorkerPool"), timeout=60, what="the pool registered")
        assert (host["metadata"]["pool_type"], host["metadata"]["celery_hostname"]) == ("threads", f"stuck@{NODE}")
        wait_for(lambda: nacos.beats("NotificationWorkerPool") >= 3, timeout=15, what="beats")

        release = tmp_path / "release"
        client.control.broadcast("testing_stall", arguments={"release": str(release), "limit": 60},
                                 destination=[f"stuck@{NODE}"], reply=False)
        log = tmp_path / "logs" / "worker.log"
        wait_for(lambda: "heartbeat to Nacos paused" in log.read_text(), timeout=15, what="the heartbeat to pause")
        beats = nacos.beats("NotificationWorkerPool")
        status, answer = health(host["port"])
        assert status == 503 and "event loop" in answer["reason"]
        assert worker.popen.poll() is None  # the process lives on: only its consumer is stuck

        clock.advance(15)  # no beat for 15 s on the server's clock
        assert nacos.hosts("NotificationWorkerPool", healthy_only=True) == []
        assert [h["healthy"] for h in nacos.hosts("NotificationWorkerPool")] == [False]
        assert nacos.beats("NotificationWorkerPool") == beats  # the process lives, and sends nothing

        release.touch()
        wait_for(lambda: nacos.hosts("NotificationWorkerPool", healthy_only=True), timeout=15,
                 what="healthy again once the consumer consumes")
        assert health(host["port"])[0] == 200
        assert "heartbeat resumed" in log.read_text()
        stop(worker)
        assert nacos.hosts("NotificationWorkerPool") == []
    finally:
        if not worker.closed:
            worker.close()
