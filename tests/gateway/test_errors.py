"""What the gateway answers itself: bad paths, oversized bodies, missing, unreachable or slow upstreams."""
from __future__ import annotations

import http.client
import time

import pytest

from tests.gateway.conftest import Lab
from tests.gateway.servers import SERVICES, EchoServer, ServedGateway, assert_error, closed_url

Headers = dict[str, str]
UNKNOWN = ["/", "/api/", "/api/unknown/", "/api/ordersx", "/favicon.ico", "/api//orders/", "/health/"]
DOTTED = ["/api/payments/callback/../../risk/policies/", "/api/payments/callback/%2e%2e/x/"]


@pytest.mark.parametrize("path", UNKNOWN)
def test_unknown_route_is_404(gateway: ServedGateway, echo: EchoServer, auth: Headers, path: str) -> None:
    assert_error(gateway.request("GET", path, headers=auth), 404, "route_not_found")
    assert echo.seen == []


@pytest.mark.parametrize("path", DOTTED)
def test_dot_segments_are_refused(gateway: ServedGateway, echo: EchoServer, path: str) -> None:
    assert_error(gateway.request("POST", path, b"{}"), 400, "invalid_path")
    assert echo.seen == []


def test_unsupported_method_is_405(gateway: ServedGateway, auth: Headers) -> None:
    reply = gateway.request("PROPFIND", "/api/orders/", headers=auth)
    assert_error(reply, 405, "method_not_allowed")
    assert "POST" in reply.headers["Allow"]


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: abc\r\n\r\nhello", b"Content-Length: -5\r\n\r\nhello",
     b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"],
    ids=["length not a number", "negative length", "bad chunk size"],
)
def test_unframeable_body_is_400(
    gateway: ServedGateway, echo: EchoServer, auth: Headers, framing: bytes
) -> None:
    head = f"POST /api/orders/ HTTP/1.1\r\nHost: gw\r\nAuthorization: {auth['Authorization']}\r\n".encode()
    assert_error(gateway.raw(head + framing), 400, "bad_request")
    assert echo.seen == []


@pytest.fixture
def small(lab: Lab, echo: EchoServer) -> ServedGateway:
    """A gateway accepting request bodies of at most 1024 bytes."""
    return lab.gateway({service: echo.url for service in SERVICES}, gateway_max_body=1024)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_413_without_contacting_the_upstream(
    small: ServedGateway, echo: EchoServer, auth: Headers, chunked: bool
) -> None:
    body = iter([b"x" * 1000, b"y" * 1000]) if chunked else b"x" * 4096
    assert_error(small.request("POST", "/api/orders/", body, auth, chunked=chunked), 413, "payload_too_large")
    assert echo.seen == [] and echo.connections == 0


def test_body_of_exactly_the_limit_passes(small: ServedGateway, echo: EchoServer, auth: Headers) -> None:
    assert small.request("POST", "/api/orders/", iter([b"x" * 1024]), auth, chunked=True).status == 200
    assert len(echo.seen[-1].body) == 1024


def test_no_instance_is_503(lab: Lab, echo: EchoServer, auth: Headers) -> None:
    gateway = lab.gateway({"orders": echo.url})
    assert_error(gateway.request("GET", "/api/payments/", headers=auth), 503, "service_unavailable")
    assert_error(gateway.request("GET", "/api/notifications/", headers=auth), 503, "service_unavailable")


def test_refused_connection_is_502(lab: Lab, auth: Headers) -> None:
    gateway = lab.gateway({"orders": closed_url()})
    assert_error(gateway.request("POST", "/api/orders/", b"{}", auth), 502, "upstream_unavailable")


def test_silent_upstream_is_504_after_the_read_timeout(lab: Lab, auth: Headers) -> None:
    silent = lab.raw("hang")
    gateway = lab.gateway({"orders": silent.url}, gateway_read_timeout=0.5)
    started = time.monotonic()
    assert_error(gateway.request("GET", "/api/orders/", headers=auth), 504, "upstream_timeout")
    assert 0.4 < time.monotonic() - started < 3
    assert silent.accepted == 1


def test_request_that_reached_an_upstream_is_never_resent(lab: Lab, echo: EchoServer, auth: Headers) -> None:
    dropper = lab.raw("drop")  # reads the request, then hangs up without answering
    gateway = lab.gateway({"orders": f"{dropper.url},{echo.url}"})
    assert_error(gateway.request("POST", "/api/orders/", b'{"pay": 1}', auth), 502, "upstream_unavailable")
    assert len(dropper.received) == 1 and dropper.received[0].startswith(b"POST /api/orders/ ")
    assert echo.seen == []


def test_body_broken_off_upstream_is_not_passed_off_as_complete(lab: Lab, auth: Headers) -> None:
    truncating = lab.raw("truncate")  # promises 1000 bytes, sends 10, hangs up
    gateway = lab.gateway({"orders": truncating.url})
    with pytest.raises(http.client.IncompleteRead):
        gateway.request("GET", "/api/orders/", headers=auth)


class _BrokenDiscovery:
    def instances(self, service: str) -> list[str]:
        raise RuntimeError("registry exploded")


def test_unexpected_failure_is_500_in_the_error_shape(lab: Lab, auth: Headers) -> None:
    gateway = lab.gateway({}, discovery=_BrokenDiscovery())
    body = assert_error(gateway.request("GET", "/api/orders/", headers=auth), 500, "internal_error")
    assert "exploded" not in body["message"]
