"""`cfmp up` end to end: the real services, gateway, worker pools, beat and Flower as children, ready,
then no orphans left."""
from __future__ import annotations

import json
import os
import re
import signal

import pytest

from common.cli.apps import registered_services
from common.cli.up import DEMO_ADMIN, DEMO_BUYER
from common.localredis import free_port
from common.settings import Settings
from common.tokens import verify_token
from tests.support.waiting import wait_for
from workers.pools import POOLS

from .procs import CliProcess, get_status, group_members, http

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HTTP_PROCESSES = ("orders", "payments", "notifications", "gateway", "flower")
CELERY_PROCESSES = {*(f"worker-{name}" for name in POOLS), "beat"}
UPSTREAM_KEYS = {"orders": "ORDER_SERVICE_URL", "payments": "PAYMENT_SERVICE_URL",
                 "notifications": "NOTIFICATION_SERVICE_URL"}


def started_children(process: CliProcess) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"^\[up\] started (\S+) \(pid (\d+)\)$",
                                                      "".join(process.stdout), re.M)}


@pytest.fixture
def system(key_prefix, spawn_cli, cli_env):
    """`cfmp up` on free ports, waited for until its banner; every process group is killed at the end.

    In development with no FLOWER_BASIC_AUTH (so Flower's login is generated), and under a key
    prefix of its own, so its pools consume nothing of anyone else's.
    """
    ports = {name: free_port() for name in HTTP_PROCESSES}
    env = {key: value for key, value in cli_env.items() if key != "FLOWER_BASIC_AUTH"}
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env.update({key: f"http://127.0.0.1:{ports[name]}" for name, key in UPSTREAM_KEYS.items()})
    env.update({"ENV": "development", "CELERY_KEY_PREFIX": key_prefix, "LOG_LEVEL": "INFO",
                "OUTBOX_RELAY_INTERVAL": "1", "ORDER_SWEEP_INTERVAL": "1"})
    process = spawn_cli("up", "--ready-timeout", "150", env=env)
    try:
        process.wait_for_line(r"^cfmp is up\.", timeout=180)
        yield process, ports, started_children(process)
    finally:
        for pid in started_children(process).values():
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_up_serves_everything_and_a_signal_stops_it_leaving_no_process_behind(system, stop_signal,
                                                                             tmp_path):
    process, ports, children = system

    assert set(children) == {*registered_services(), "gateway", "flower", *CELERY_PROCESSES}
    assert get_status(f"http://127.0.0.1:{ports['gateway']}/health") == 200
    assert get_status(f"http://127.0.0.1:{ports['orders']}/ready") == 200
    banner = "".join(process.stdout)
    for name in CELERY_PROCESSES:  # each answered a ping before the banner
        assert re.search(rf"^\[up\] {name} ready \(", banner, re.M), name
    flower = re.search(r"^  flower +(http://\S+) +user (\S+), password (\S+) ", banner, re.M)
    assert flower.group(1) == f"http://127.0.0.1:{ports['flower']}"
    login = f"{flower.group(2)}:{flower.group(3)}"
    assert http(f"{flower.group(1)}/api/workers")[0] == 401

    def pools_in_flower() -> set[str]:  # a busy machine may miss Flower's 1 s inspect window once
        status, body = http(f"{flower.group(1)}/api/workers?refresh=1", basic_auth=login)
        assert status == 200, body
        found = {name.partition("@")[0] for name in json.loads(body)}
        return found if found == set(POOLS) else set()

    wait_for(pools_in_flower, timeout=30, interval=0.5, what="the four pools in Flower")

    def swept_by_the_orders_pool() -> bool:  # beat → Redis → the orders pool, every second
        log = (tmp_path / "logs" / "worker-orders.log").read_text()
        return all(re.search(rf"Task orders\.{name}\[[-0-9a-f]+\] succeeded", log)
                   for name in ("relay_outbox", "expire_unpaid_orders"))

    wait_for(swept_by_the_orders_pool, timeout=30, interval=0.2, what="beat's sweeps run by the orders pool")
    settings = Settings.from_env({}, dotenv_path=None)
    buyer = re.search(r"^  buyer token +(\S+)$", banner, re.M).group(1)
    admin = re.search(r"^  admin token +(\S+)", banner, re.M).group(1)
    assert verify_token(settings, buyer).user_uuid == DEMO_BUYER
    admin_identity = verify_token(settings, admin)
    assert (admin_identity.user_uuid, admin_identity.role) == (DEMO_ADMIN, "admin")
    assert re.search(r"^\[orders\] .*GET /ready -> 200", banner, re.M)

    assert process.stop(stop_signal, timeout=60) == 0, process.transcript()

    assert group_members({process.popen.pid, *children.values()}) == []
    assert "".join(process.stdout).rstrip().endswith("[up] stopped")


def test_a_child_that_dies_stops_everything_and_is_named(system):
    process, ports, children = system

    os.killpg(children["orders"], signal.SIGKILL)

    assert process.wait(timeout=60) == 1, process.transcript()
    assert "cfmp up: orders exited unexpectedly with code -9; stopping everything\n" in process.stderr
    assert group_members({process.popen.pid, *children.values()}) == []
