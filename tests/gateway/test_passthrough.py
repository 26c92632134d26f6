"""What the client sends reaches the upstream unchanged, and what the upstream answers comes back."""
from __future__ import annotations

import gzip

import pytest

from tests.gateway.servers import EchoServer, ServedGateway, stream_chunks

Headers = dict[str, str]


def test_health_answers_without_a_token(gateway: ServedGateway, echo: EchoServer) -> None:
    reply = gateway.request("GET", "/health")
    assert reply.status == 200
    assert reply.json() == {"status": "ok", "service": "gateway"}
    assert echo.seen == []


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_method_path_query_and_body_pass_through(
    gateway: ServedGateway, echo: EchoServer, auth: Headers, method: str
) -> None:
    body = b'{"note": "caf\xc3\xa9"}' if method in ("POST", "PUT", "PATCH") else None
    headers = {**auth, "Content-Type": "application/json", "X-Custom": "kept"}
    reply = gateway.request(method, "/api/orders/abc/?status=paid&x=%2F+y", body, headers)
    assert reply.status == 200
    seen = echo.seen[-1]
    assert (seen.method, seen.path, seen.query) == (method, "/api/orders/abc/", "status=paid&x=%2F+y")
    assert seen.body == (body or b"")
    assert seen.header("X-Custom") == "kept"
    assert seen.header("Content-Type") == "application/json"
    assert reply.json()["path"] == "/api/orders/abc/"  # the upstream's own body came back


def test_encoded_path_is_forwarded_as_sent(gateway: ServedGateway, echo: EchoServer, auth: Headers) -> None:
    gateway.request("GET", "/api/notifications/a%2Fb/caf%C3%A9/", headers=auth)
    assert echo.seen[-1].path == "/api/notifications/a%2Fb/caf%C3%A9/"


def test_absolute_form_target_is_sent_as_a_path(
    gateway: ServedGateway, echo: EchoServer, auth: Headers
) -> None:
    head = f"GET http://elsewhere.example/api/orders/x?y=1 HTTP/1.1\r\nAuthorization: {auth['Authorization']}"
    assert gateway.raw(f"{head}\r\n\r\n".encode()).status == 200
    seen = echo.seen[-1]
    assert (seen.path, seen.query) == ("/api/orders/x", "y=1")
    assert seen.header("Host") == f"127.0.0.1:{echo.server_port}"


def test_upstream_status_and_headers_come_back(gateway: ServedGateway, auth: Headers) -> None:
    reply = gateway.request("POST", "/api/payments/x/_status/418", b"{}", auth)
    assert reply.status == 418
    assert reply.body == b'{"custom": true}'
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert reply.headers["X-Upstream"] == "yes"
    assert reply.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    for hop in ("X-Hop", "Keep-Alive", "Proxy-Authenticate"):
        assert hop not in reply.headers


def test_no_content_and_head_answers_carry_no_body(gateway: ServedGateway, auth: Headers) -> None:
    assert gateway.request("DELETE", "/api/notifications/_status/204", headers=auth).status == 204
    reply = gateway.request("HEAD", "/api/orders/", headers=auth)
    assert (reply.status, reply.body) == (200, b"")
    assert int(reply.headers["Content-Length"]) > 0  # the length a GET would have


def test_hop_by_hop_request_headers_are_dropped(
    gateway: ServedGateway, echo: EchoServer, auth: Headers
) -> None:
    hops = {
        "Connection": "keep-alive, X-Private", "X-Private": "1", "Keep-Alive": "timeout=5", "TE": "trailers",
        "Upgrade": "h2c", "Proxy-Authorization": "Basic eDp5", "Trailer": "X-Sum",
    }
    gateway.request("GET", "/api/orders/", headers={**auth, **hops, "X-Kept": "1"})
    seen = echo.seen[-1]
    assert seen.header("X-Kept") == "1"
    assert seen.header("Connection") is None  # HTTP/1.1 keeps the connection alive; never the client's
    for name in ("X-Private", "Keep-Alive", "TE", "Upgrade", "Proxy-Authorization", "Trailer"):
        assert seen.header(name) is None, name


def test_forwarded_headers_and_upstream_host(
    gateway: ServedGateway, echo: EchoServer, auth: Headers
) -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Host": "x.test", "X-Forwarded-Proto": "https"}
    gateway.request("GET", "/api/orders/", headers={**auth, **spoofed})
    seen = echo.seen[-1]
    assert seen.header_all("X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"]
    assert seen.header_all("X-Forwarded-Host") == [f"127.0.0.1:{gateway.port}"]
    assert seen.header_all("X-Forwarded-Proto") == ["http"]
    assert seen.header_all("Host") == [f"127.0.0.1:{echo.server_port}"]


def test_chunked_request_body_is_forwarded_whole(
    gateway: ServedGateway, echo: EchoServer, auth: Headers
) -> None:
    reply = gateway.request("POST", "/api/orders/", iter([b"abc", b"def" * 100]), auth, chunked=True)
    assert reply.status == 200
    assert echo.seen[-1].body == b"abc" + b"def" * 100
    assert echo.seen[-1].header("Content-Length") == "303"


def test_large_response_streams_back_intact(gateway: ServedGateway, auth: Headers) -> None:
    size = 3 * 1024 * 1024 + 17  # larger than gateway_max_body: the limit is for requests only
    reply = gateway.request("GET", f"/api/orders/_stream/{size}", headers=auth)
    assert reply.status == 200
    assert reply.body == b"".join(stream_chunks(size))


def test_encoded_response_is_not_decoded(gateway: ServedGateway, auth: Headers) -> None:
    reply = gateway.request("GET", "/api/orders/_gzip", headers={**auth, "Accept-Encoding": "gzip"})
    assert reply.headers["Content-Encoding"] == "gzip"
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    assert gzip.decompress(reply.body) == b"zipped " * 100
