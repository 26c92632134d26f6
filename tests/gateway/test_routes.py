"""The route table, static discovery and the upstream-failure mapping, without any server."""
from __future__ import annotations

import pytest

from common.settings import Settings
from gateway.discovery import StaticDiscovery
from gateway.proxy import upstream_error
from gateway.routes import ROUTES, has_dot_segment, match
from gateway.upstream_client import ConnectFailed, ConnectTimeout, ProtocolError, ReadTimeout


@pytest.mark.parametrize(
    ("path", "service", "auth"),
    [
        ("/api/orders/", "orders", True),
        ("/api/orders/5a1c/cancel/", "orders", True),
        ("/api/orders", "orders", True),
        ("/api/payments/", "payments", True),
        ("/api/payments/callback/alipay/", "payments", False),
        ("/api/payments/callback", "payments", False),
        ("/api/risk/assessments/", "payments", True),
        ("/api/notifications/unread-count/", "notifications", True),
    ],
)
def test_longest_prefix_wins(path: str, service: str, auth: bool) -> None:
    route = match(path)
    assert route is not None
    assert (route.service, route.auth) == (service, auth)


@pytest.mark.parametrize("path", ["/", "/api/", "/api/ordersx/", "/health", "/API/orders/", "//api/orders/"])
def test_unknown_paths_match_nothing(path: str) -> None:
    assert match(path) is None


def test_every_route_names_its_nacos_service() -> None:
    names = {route.prefix: route.nacos_service for route in ROUTES}
    assert names["/api/orders/"] == "OrderService"
    assert names["/api/payments/callback/"] == names["/api/risk/"] == "PaymentService"
    assert names["/api/notifications/"] == "NotificationService"


@pytest.mark.parametrize(
    ("path", "dotted"),
    [("/api/orders/../risk/", True), ("/api/orders/./x", True), ("/api/orders/..", True),
     ("/api/orders/a..b/", False), ("/api/orders/.well-known/", False)],
)
def test_dot_segments(path: str, dotted: bool) -> None:
    assert has_dot_segment(path) is dotted


def test_static_discovery_lists_comma_separated_instances() -> None:
    settings = Settings(upstreams={"orders": "http://10.0.0.1:8001/, http://10.0.0.2:8001", "payments": ""})
    discovery = StaticDiscovery(settings)
    assert discovery.instances("orders") == ["http://10.0.0.1:8001", "http://10.0.0.2:8001"]
    assert discovery.instances("payments") == []
    assert discovery.instances("notifications") == []


@pytest.mark.parametrize("url", ["ftp://10.0.0.1", "http://", "http://host:8001/?q=1", "10.0.0.1:8001"])
def test_static_discovery_refuses_bad_urls_at_start(url: str) -> None:
    with pytest.raises(ValueError, match="orders"):
        StaticDiscovery(Settings(upstreams={"orders": url}))


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (ConnectFailed("refused"), 502, "upstream_unavailable"),
        (ConnectFailed("no such host"), 502, "upstream_unavailable"),
        (ProtocolError("Connection aborted."), 502, "upstream_unavailable"),
        (ConnectTimeout("connect timed out"), 504, "upstream_timeout"),
        (ReadTimeout("read timed out"), 504, "upstream_timeout"),
    ],
)
def test_upstream_failures_map_to_gateway_statuses(exc: Exception, status: int, code: str) -> None:
    error = upstream_error(exc, "orders")
    assert (error.status, error.code) == (status, code)
