"""`cfmp status`: every service and pool with its health and address, from Nacos or from the local
processes, and the depth of each queue read from Redis."""
from __future__ import annotations

import os
import re

import pytest
from click.testing import CliRunner

from common.cli import main
from common.registry import Instance, Registry
from tests.cli.procs import CliProcess
from tests.support.servers import closed_port, serve_in_thread
from tests.support.waiting import wait_for

NODE = os.uname().nodename


def run_status(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, ["status", *args], env=env)


def row(output: str, *cells: str) -> bool:
    """Whether some line holds these cells in this order, separated by column spacing."""
    pattern = r"\s{2,}".join(re.escape(cell) for cell in cells)
    return any(re.match(pattern, line) for line in output.splitlines())


@pytest.mark.usefixtures("key_prefix")
def test_status_lists_nacos_instances_with_health_address_and_queue_depth(env, nacos, clock, client,
                                                                          registry_settings):
    registry = Registry(registry_settings(nacos))
    registry.register(Instance("PaymentService", "10.0.0.2", 8002, {"version": "0.1.0"}))
    clock.advance(16)  # PaymentService missed its beats
    registry.register(Instance("OrderService", "10.0.0.1", 8001, {"version": "0.1.0"}))
    registry.register(Instance("OrderWorkerPool", "10.0.0.21", 40001, {
        "celery_hostname": "orders@w1", "pool_type": "prefork", "concurrency": "2", "version": "0.1.0"}))
    for _ in range(3):
        client.send_task("orders.nobody_consumes_this")  # no worker on this key prefix: they wait

    result = run_status({**env, "NACOS_SERVER": nacos.address})

    assert result.exit_code == 1, result.output  # not everything is healthy
    out = result.output
    assert out.splitlines()[0] == f"from Nacos at {nacos.address}"
    assert row(out, "OrderService", "healthy", "10.0.0.1:8001", "-", "version=0.1.0")
    assert row(out, "PaymentService", "unhealthy", "10.0.0.2:8002")
    assert row(out, "NotificationService", "none", "-")
    assert row(out, "OrderWorkerPool", "healthy", "10.0.0.21:40001", "orders: 3 waiting",
               "celery_hostname=orders@w1 pool_type=prefork concurrency=2 version=0.1.0")
    assert row(out, "RiskWorkerPool", "none", "-", "risk: 0 waiting")
    assert out.splitlines()[-1] == ("not healthy: NotificationService, NotificationWorkerPool, PaymentService, "
                                    "PaymentWorkerPool, RiskWorkerPool")


def test_status_says_in_one_line_when_nacos_cannot_be_read(env):
    result = run_status({**env, "NACOS_SERVER": f"127.0.0.1:{closed_port()}"})

    assert result.exit_code == 1
    assert re.fullmatch(r"cfmp: cannot read Nacos: list at 127\.0\.0\.1:\d+: .+\n", result.stderr)


@pytest.mark.usefixtures("key_prefix")
def test_status_without_nacos_asks_the_local_processes(env, tmp_path):
    from gateway import create_app  # any app with /health will do for the probe

    served = serve_in_thread(create_app())
    try:
        down = f"http://127.0.0.1:{closed_port()}"
        result = run_status({**env, "ORDER_SERVICE_URL": f"{served.url},{down}", "PAYMENT_SERVICE_URL": down,
                             "NOTIFICATION_SERVICE_URL": down, "NACOS_SERVER": ""}, "--timeout", "0.3")
    finally:
        served.stop()
    out = result.output
    assert result.exit_code == 1, out
    assert out.splitlines()[0] == "from local processes (NACOS_SERVER unset)"
    assert row(out, "OrderService", "healthy", served.url.split("//")[1])
    assert row(out, "OrderService", "down", down.split("//")[1])
    assert row(out, "OrderWorkerPool", "none", "-", "orders: 0 waiting")


@pytest.mark.slow
@pytest.mark.usefixtures("key_prefix")
def test_status_without_nacos_finds_a_running_pool(env, spawn_cli, client):
    worker = spawn_cli("worker", "risk", "-c", "1", env=env)
    wait_for(lambda: client.control.ping(destination=[f"risk@{NODE}"], timeout=0.5), timeout=60, what="the worker")

    result = run_status({**env, "NACOS_SERVER": ""})

    assert row(result.output, "RiskWorkerPool", "healthy", f"risk@{NODE}", "risk: 0 waiting", "answers the broker")
    assert row(result.output, "PaymentWorkerPool", "none")
    assert worker.stop() == 0
