"""Several instances per service: round robin, failover on refused connections, and pooled connections."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.gateway.conftest import Lab
from tests.gateway.servers import EchoServer, ServedGateway, closed_url

Headers = dict[str, str]


def test_round_robin_spreads_requests_over_live_instances(lab: Lab, auth: Headers) -> None:
    first, second = lab.echo(), lab.echo()
    gateway = lab.gateway({"orders": f"{first.url},{second.url}"})
    ports = [gateway.request("GET", "/api/orders/", headers=auth).json()["port"] for _ in range(6)]
    assert ports == [first.server_port, second.server_port] * 3
    assert len(first.seen) == len(second.seen) == 3


def test_refused_instance_is_skipped(lab: Lab, echo: EchoServer, auth: Headers) -> None:
    gateway = lab.gateway({"payments": f"{closed_url()},{echo.url}"})
    statuses = [gateway.request("POST", "/api/payments/", b'{"n": %d}' % n, auth).status for n in range(4)]
    assert statuses == [200] * 4
    assert [seen.body for seen in echo.seen] == [b'{"n": %d}' % n for n in range(4)]  # each sent exactly once


def test_every_instance_refusing_is_502(lab: Lab, auth: Headers) -> None:
    gateway = lab.gateway({"orders": f"{closed_url()},{closed_url()}"})
    assert gateway.request("GET", "/api/orders/", headers=auth).status == 502


def test_upstream_connections_are_reused(gateway: ServedGateway, echo: EchoServer, auth: Headers) -> None:
    for _ in range(5):
        assert gateway.request("GET", "/api/orders/", headers=auth).status == 200
    assert echo.connections == 1
    assert len({seen.client_port for seen in echo.seen}) == 1


def test_concurrent_requests_share_a_bounded_set_of_connections(
    gateway: ServedGateway, echo: EchoServer, auth: Headers
) -> None:
    def call(n: int) -> int:
        return gateway.request("POST", "/api/orders/", b"%d" % n, auth).status

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(call, range(24))) == [200] * 24
    assert sorted(int(seen.body) for seen in echo.seen) == list(range(24))
    assert echo.connections <= 4
