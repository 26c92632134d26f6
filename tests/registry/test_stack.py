"""The order service behind the gateway with Nacos discovery, end to end over real HTTP: two
instances share the traffic and one can die; Nacos can die and come back while everything keeps
answering. The services register exactly as `cfmp serve` does (`common.serve.register_service`)."""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from common.registry import SERVICE_NAMES
from common.settings import Settings
from common.tokens import issue_token
from gateway import create_app as create_gateway
from gateway.discovery import NacosDiscovery
from tests.cli.procs import get_status
from tests.registry.conftest import FAST
from tests.support.client import Api
from tests.support.nacos_double import NacosDouble
from tests.support.servers import ServedApp, close_celery, serve_in_thread
from tests.support.waiting import wait_for


@dataclass
class OrderFleet:
    settings: Settings
    nacos: NacosDouble
    served: list[ServedApp] = field(default_factory=list)
    hits: Counter = field(default_factory=Counter)  # requests each instance (by port) answered

    def start(self) -> ServedApp:
        from api.orders import create_app

        app = create_app(self.settings)
        port_of = {}

        @app.after_request
        def count(response):
            self.hits[port_of["port"]] += 1
            return response

        served = serve_in_thread(app, register={"backoff": FAST})
        port_of["port"] = served.port
        self.served.append(served)
        return served

    def registered(self) -> list[int]:
        return sorted(host["port"] for host in self.nacos.hosts("OrderService", healthy_only=True))

    def stop(self) -> None:
        for served in self.served:
            served.stop()
            close_celery(served.app.extensions["celery"])


@pytest.fixture
def order_settings(tmp_path, redis_url, nacos) -> Settings:
    from models.migrate import upgrade

    settings = Settings(env="test", nacos_server=nacos.address, broker_url=redis_url, result_backend=redis_url,
                        database_urls={name: f"sqlite:///{tmp_path / name}.db" for name in SERVICE_NAMES},
                        celery_key_prefix=f"cfmp-test-{uuid.uuid4().hex[:8]}:",
                        log_dir=str(tmp_path / "logs"), var_dir=str(tmp_path / "var"))
    upgrade(settings)
    return settings


@pytest.fixture
def fleet(order_settings, nacos) -> Iterator[OrderFleet]:
    fleet = OrderFleet(order_settings, nacos)
    yield fleet
    fleet.stop()


@pytest.fixture
def gateway(order_settings) -> Iterator[ServedApp]:
    served = serve_in_thread(create_gateway(order_settings, discovery=NacosDiscovery(order_settings, refresh=0.05)))
    yield served
    served.stop()


def my_orders(api: Api, n: int) -> list[int]:
    return [api.get("/api/orders/").status for _ in range(n)]


def test_two_order_services_share_the_traffic_and_one_can_die(fleet: OrderFleet, gateway, order_settings):
    first, second = fleet.start(), fleet.start()
    wait_for(lambda: fleet.registered() == sorted([first.port, second.port]), timeout=5, what="both registered")
    api = Api(gateway.url, issue_token(order_settings, uuid.uuid4()))

    assert my_orders(api, 10) == [200] * 10
    assert fleet.hits == {first.port: 5, second.port: 5}

    second.stop(deregister=False)  # killed: it tells nobody, and Nacos still lists it as healthy
    fleet.hits.clear()
    assert my_orders(api, 10) == [200] * 10
    assert fleet.hits == {first.port: 10}
    assert fleet.registered() == sorted([first.port, second.port])


def test_nacos_dies_and_comes_back_while_everything_keeps_answering(fleet: OrderFleet, gateway, order_settings,
                                                                    nacos, clock):
    first, second = fleet.start(), fleet.start()
    wait_for(lambda: fleet.registered() == sorted([first.port, second.port]), timeout=5, what="both registered")
    api = Api(gateway.url, issue_token(order_settings, uuid.uuid4()))
    assert my_orders(api, 4) == [200] * 4

    nacos.stop()
    wait_for(lambda: all(s.registration.failures for s in (first, second)), timeout=5,
             what="the services to notice the outage")
    fleet.hits.clear()
    assert my_orders(api, 10) == [200] * 10  # the gateway's last good list
    assert fleet.hits == {first.port: 5, second.port: 5}
    assert [get_status(f"{s.url}/health") for s in (first, second)] == [200, 200]

    restarted = NacosDouble(port=nacos.port, clock=clock, beat_interval_ms=50, register_from_beat=False)
    fleet.nacos = restarted
    try:
        # It starts empty; the services register again by themselves, and traffic never stops.
        assert my_orders(api, 4) == [200] * 4
        wait_for(lambda: fleet.registered() == sorted([first.port, second.port]), timeout=5,
                 what="both registered again")
        assert restarted.count("POST", "/nacos/v1/ns/instance") == 2
        assert restarted.hosts("OrderService")[0]["metadata"]["health_path"] == "/health"
        third = fleet.start()
        wait_for(lambda: my_orders(api, 3) == [200] * 3 and third.port in fleet.hits, timeout=5,
                 what="the new instance in the rotation")
        assert my_orders(api, 6) == [200] * 6
    finally:
        fleet.stop()
        fleet.served.clear()
        restarted.stop()
