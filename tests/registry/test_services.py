"""HTTP services register as OrderService, PaymentService and NotificationService at the port they
really listen on, keep beating, and deregister when they stop: in-thread servers (the same call as
`cfmp serve`), and `cfmp serve` itself under gunicorn and werkzeug."""
from __future__ import annotations

from pathlib import Path

import pytest

from common.registry import SERVICE_NAMES, version
from common.settings import Settings
from gateway.routes import NACOS_SERVICE_NAMES
from tests.cli.procs import get_status
from tests.registry.conftest import FAST
from tests.support.nacos_double import NacosDouble
from tests.support.servers import closed_port, serve_in_thread
from tests.support.waiting import wait_for

METADATA = {"version": version(), "health_path": "/health", "kind": "service"}


def service_settings(tmp_path: Path, redis_url: str, double: NacosDouble | str) -> Settings:
    address = double if isinstance(double, str) else double.address
    return Settings(env="test", nacos_server=address, broker_url=redis_url, result_backend=redis_url,
                    database_urls={name: f"sqlite:///{tmp_path / name}.db" for name in SERVICE_NAMES},
                    log_dir=str(tmp_path / "logs"), var_dir=str(tmp_path / "var"))


def ports(double: NacosDouble, service: str) -> list[int]:
    return sorted(host["port"] for host in double.hosts(service))


def test_the_names_are_the_gateways_and_the_designs():
    assert SERVICE_NAMES == NACOS_SERVICE_NAMES


def test_each_service_registers_its_real_port_and_metadata_beats_and_deregisters(tmp_path, redis_url, nacos):
    from common.cli.apps import load_factory, registered_services, service_app
    from tests.support.servers import close_celery

    settings = service_settings(tmp_path, redis_url, nacos)
    apps = {name: load_factory(service_app(name))(settings) for name in registered_services()}
    served = {name: serve_in_thread(app, register={"backoff": FAST}) for name, app in apps.items()}
    try:
        for name, server in served.items():
            service = SERVICE_NAMES[name]
            wait_for(lambda: ports(nacos, service) == [server.port], timeout=5, what=f"{service} registered")
            [host] = nacos.hosts(service)
            assert (host["ip"], host["metadata"], host["healthy"]) == ("127.0.0.1", METADATA, True)
            assert get_status(f"http://{host['ip']}:{host['port']}{host['metadata']['health_path']}") == 200
            wait_for(lambda: nacos.beats(service) >= 3, timeout=5, what=f"{service} beating")

        served["orders"].stop()
        assert ports(nacos, "OrderService") == []
        assert ports(nacos, "PaymentService") == [served["payments"].port]  # the others stay
    finally:
        for name, server in served.items():
            server.stop()
            close_celery(apps[name].extensions["celery"])
    assert nacos.services() == {}


def test_the_gateway_is_not_registered(nacos, tmp_path, redis_url):
    from gateway import create_app

    served = serve_in_thread(create_app(service_settings(tmp_path, redis_url, nacos)), register={})
    served.stop()
    assert served.registration is None and nacos.calls == []


@pytest.mark.slow
@pytest.mark.parametrize("server", [["--workers", "1"], ["--dev"]], ids=["gunicorn", "dev"])
def test_cfmp_serve_registers_the_port_it_got_and_deregisters_on_sigterm(spawn_cli, cli_env, nacos, server):
    process = spawn_cli("serve", "orders", "--port", "0", *server, env={**cli_env, "NACOS_SERVER": nacos.address})
    port = int(process.wait_for_line(r"^listening on http://127\.0\.0\.1:(\d+)$", timeout=60).group(1))

    wait_for(lambda: ports(nacos, "OrderService") == [port], timeout=15, what="OrderService registered")
    assert nacos.hosts("OrderService")[0]["metadata"] == METADATA
    wait_for(lambda: nacos.beats("OrderService") >= 3, timeout=15, what="beats")

    assert process.stop() == 0, process.transcript()
    assert ports(nacos, "OrderService") == []
    assert nacos.count("DELETE", "/nacos/v1/ns/instance") == 1


@pytest.mark.slow
def test_cfmp_serve_runs_with_nacos_down_and_registers_once_it_is_up(spawn_cli, cli_env, clock, tmp_path):
    nacos_port = closed_port()
    process = spawn_cli("serve", "orders", "--port", "0", "--workers", "1",
                        env={**cli_env, "NACOS_SERVER": f"127.0.0.1:{nacos_port}"})
    url = process.wait_for_line(r"^listening on (http://\S+)$", timeout=60).group(1)

    assert get_status(f"{url}/health") == 200
    log = tmp_path / "logs" / "orders.log"
    wait_for(lambda: "Nacos unreachable for OrderService" in log.read_text(), timeout=15, what="the outage logged")
    assert get_status(f"{url}/health") == 200

    double = NacosDouble(port=nacos_port, clock=clock, beat_interval_ms=50)
    try:
        wait_for(lambda: ports(double, "OrderService") == [int(url.rsplit(":", 1)[1])], timeout=40,
                 interval=0.2, what="OrderService registered once Nacos is up")
        assert process.stop() == 0, process.transcript()
        assert ports(double, "OrderService") == []
    finally:
        double.stop()
