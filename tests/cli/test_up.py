"""`cfmp up` end to end: the real services and gateway as children, ready, then no orphans left."""
from __future__ import annotations

import os
import re
import signal

import pytest

from common.cli.up import DEMO_ADMIN, DEMO_BUYER
from common.localredis import free_port
from common.settings import Settings
from common.tokens import verify_token

from .procs import CliProcess, get_status, group_members

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HTTP_PROCESSES = ("orders", "payments", "notifications", "gateway")
UPSTREAM_KEYS = {"orders": "ORDER_SERVICE_URL", "payments": "PAYMENT_SERVICE_URL",
                 "notifications": "NOTIFICATION_SERVICE_URL"}


def started_children(process: CliProcess) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"^\[up\] started (\S+) \(pid (\d+)\)$",
                                                      "".join(process.stdout), re.M)}


@pytest.fixture
def system(spawn_cli, cli_env):
    """`cfmp up` on free ports, waited for until its banner; every process group is killed at the end."""
    ports = {name: free_port() for name in HTTP_PROCESSES}
    env = {**cli_env, **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()}}
    env.update({key: f"http://127.0.0.1:{ports[name]}" for name, key in UPSTREAM_KEYS.items()})
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
def test_up_serves_everything_and_a_signal_stops_it_leaving_no_process_behind(system, stop_signal):
    process, ports, children = system

    assert set(children) == {"orders", "gateway"}
    assert get_status(f"http://127.0.0.1:{ports['gateway']}/health") == 200
    assert get_status(f"http://127.0.0.1:{ports['orders']}/ready") == 200
    banner = "".join(process.stdout)
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
