"""The gateway finds upstreams in Nacos: healthy instances only, weighted round robin, a cache
refreshed in the background, the last good list while Nacos is away, failover on refused
connections. Real gateway, real echo upstreams, the real client against the Nacos double."""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from common.registry import Backoff, Instance, Registration, Registry
from gateway import create_app
from gateway.discovery import NacosDiscovery, StaticDiscovery, weighted_order
from tests.gateway.conftest import Lab, auth, lab  # noqa: F401  (real gateways and echo upstreams)
from tests.gateway.servers import GATEWAY_SECRET, EchoServer, ServedGateway
from tests.registry.conftest import FAST

LIST_PATH = "/nacos/v1/ns/instance/list"
from tests.support.nacos_double import NacosDouble
from tests.support.waiting import wait_for

REFRESH = 0.05


def instance(port: int, weight: float = 1.0, ip: str = "127.0.0.1") -> Instance:
    return Instance("OrderService", ip, port, {}, weight)


def test_weighted_round_robin_interleaves_by_weight():
    a, b, c = instance(1), instance(2, weight=2), instance(3, weight=0)
    assert weighted_order([a]) == ["http://127.0.0.1:1"]
    assert weighted_order([b, a]) == ["http://127.0.0.1:2", "http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert Counter(weighted_order([instance(1, 5), a.__class__("OrderService", "127.0.0.1", 2, {}, 1)])) == {
        "http://127.0.0.1:1": 5, "http://127.0.0.1:2": 1}
    assert weighted_order([c]) == []  # weight 0: no traffic
    assert weighted_order([instance(8001, ip="::1")]) == ["http://[::1]:8001"]


def test_create_app_uses_nacos_only_when_configured(registry_settings, nacos):
    with_nacos = create_app(registry_settings(nacos).replace(jwt_secret=GATEWAY_SECRET))
    proxy = with_nacos.extensions["gateway.proxy"]
    assert isinstance(proxy._discovery, NacosDiscovery)
    proxy.close()
    assert isinstance(create_app().extensions["gateway.proxy"]._discovery, StaticDiscovery)


class Fleet:
    """Echo upstreams registered in Nacos as OrderService, and a gateway discovering them."""

    def __init__(self, lab: Lab, nacos: NacosDouble, settings):
        self.lab, self.nacos, self.settings = lab, nacos, settings
        self.registrations: dict[int, Registration] = {}

    def upstream(self, weight: float = 1.0) -> EchoServer:
        echo = self.lab.echo()
        registration = Registration(Registry(self.settings), instance(echo.server_port, weight), backoff=FAST)
        self.registrations[echo.server_port] = registration.start()
        wait_for(lambda: echo.server_port in [h["port"] for h in self.nacos.hosts("OrderService")], timeout=5,
                 what="the upstream registered")
        return echo

    def gateway(self, **options) -> ServedGateway:
        discovery = NacosDiscovery(self.settings, refresh=REFRESH, **options)
        return self.lab.gateway({}, discovery=discovery)

    def stop(self) -> None:
        for registration in self.registrations.values():
            registration.stop(deregister=False)


@pytest.fixture
def fleet(lab, nacos, registry_settings) -> Iterator[Fleet]:
    fleet = Fleet(lab, nacos, registry_settings(nacos))
    yield fleet
    fleet.stop()


def ports_of(gateway: ServedGateway, auth: dict, n: int) -> list[int]:
    replies = [gateway.request("GET", "/api/orders/", headers=auth) for _ in range(n)]
    assert [reply.status for reply in replies] == [200] * n, replies[0].body
    return [reply.json()["port"] for reply in replies]


def test_requests_spread_over_every_healthy_instance_by_weight(fleet: Fleet, auth):
    light, heavy = fleet.upstream(weight=1), fleet.upstream(weight=3)
    gateway = fleet.gateway()

    assert Counter(ports_of(gateway, auth, 8)) == {light.server_port: 2, heavy.server_port: 6}


def test_a_new_instance_joins_and_an_unhealthy_one_leaves(fleet: Fleet, clock, auth):
    first = fleet.upstream()
    gateway = fleet.gateway()
    assert set(ports_of(gateway, auth, 3)) == {first.server_port}

    second = fleet.upstream()
    wait_for(lambda: set(ports_of(gateway, auth, 4)) == {first.server_port, second.server_port}, timeout=5,
             what="the new instance to receive traffic")

    fleet.registrations[first.server_port].stop(deregister=False)  # it stops beating, and keeps serving
    clock.advance(15)  # unhealthy now; the other one keeps beating
    wait_for(lambda: set(ports_of(gateway, auth, 4)) == {second.server_port}, timeout=5,
             what="the unhealthy instance to be left out")


def test_an_instance_that_refuses_connections_is_failed_over(fleet: Fleet, auth):
    from tests.support.servers import closed_port

    survivor = fleet.upstream()
    dead = Registration(Registry(fleet.settings), instance(closed_port()), backoff=FAST).start()
    fleet.registrations[dead.instance.port] = dead  # registered and beating, but nothing listens there
    wait_for(lambda: len(fleet.nacos.hosts("OrderService", healthy_only=True)) == 2, timeout=5,
             what="both registered")
    gateway = fleet.gateway()

    assert ports_of(gateway, auth, 6) == [survivor.server_port] * 6  # every request answered, none lost


def test_the_last_good_list_is_used_while_nacos_is_away(fleet: Fleet, clock, auth, caplog):
    caplog.set_level(logging.INFO, logger="gateway.discovery")  # the embedded worker may have raised the root level
    first, second = fleet.upstream(), fleet.upstream()
    gateway = fleet.gateway()
    assert set(ports_of(gateway, auth, 4)) == {first.server_port, second.server_port}

    fleet.nacos.stop()
    wait_for(lambda: any("routing from the last good lists" in r.getMessage() for r in caplog.records),
             timeout=5, what="the outage noticed")
    assert set(ports_of(gateway, auth, 4)) == {first.server_port, second.server_port}

    restarted = NacosDouble(port=fleet.nacos.port, clock=clock, beat_interval_ms=50)
    try:
        # It knows nobody until the instances' next heartbeat: an empty answer keeps the known list,
        # a partial one (one instance back already) is used as it is. Either way, every request lands.
        assert set(ports_of(gateway, auth, 4)) <= {first.server_port, second.server_port}
        wait_for(lambda: len(restarted.hosts("OrderService")) == 2, timeout=5, what="the instances back")
        wait_for(lambda: set(ports_of(gateway, auth, 4)) == {first.server_port, second.server_port}, timeout=5,
                 what="both in the rotation again")
        fleet.nacos = restarted
        third = fleet.upstream()  # registered after the restart
        wait_for(lambda: third.server_port in ports_of(gateway, auth, 6), timeout=5,
                 what="the list refreshed from the restarted Nacos")
    finally:
        restarted.stop()


def test_an_empty_answer_is_trusted_only_after_the_grace(fleet: Fleet, clock, auth):
    echo = fleet.upstream()
    grace_clock = [0.0]
    gateway = fleet.gateway(empty_grace=30, clock=lambda: grace_clock[0])
    assert ports_of(gateway, auth, 2) == [echo.server_port] * 2

    fleet.registrations[echo.server_port].stop()  # deregistered: Nacos answers no instance
    listed = fleet.nacos.count("GET", LIST_PATH)
    wait_for(lambda: fleet.nacos.count("GET", LIST_PATH) >= listed + 2, timeout=5,
             what="the gateway to have asked Nacos since")  # so it has seen the empty answer
    assert ports_of(gateway, auth, 2) == [echo.server_port] * 2  # may be a Nacos that just restarted
    grace_clock[0] = 31
    wait_for(lambda: gateway.request("GET", "/api/orders/", headers=auth).status == 503, timeout=5,
             what="the empty list trusted after the grace")


def test_a_service_nobody_registered_is_503(fleet: Fleet, auth):
    gateway = fleet.gateway()
    reply = gateway.request("GET", "/api/payments/", headers=auth)
    assert reply.status == 503 and reply.json()["error"] == "service_unavailable"


def test_a_gateway_started_while_nacos_is_down_routes_once_it_is_up(lab, clock, registry_settings, auth):
    from tests.support.servers import closed_port

    port = closed_port()
    settings = registry_settings(f"127.0.0.1:{port}")
    gateway = lab.gateway({}, discovery=NacosDiscovery(settings, refresh=REFRESH))
    assert gateway.request("GET", "/api/orders/", headers=auth).status == 503

    double = NacosDouble(port=port, clock=clock, beat_interval_ms=50)
    try:
        fleet = Fleet(lab, double, settings)
        echo = fleet.upstream()
        wait_for(lambda: gateway.request("GET", "/api/orders/", headers=auth).status == 200, timeout=5,
                 what="routing once Nacos answers")
        assert ports_of(gateway, auth, 2) == [echo.server_port] * 2
        fleet.stop()
    finally:
        double.stop()
