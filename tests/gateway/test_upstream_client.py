"""The gateway's own HTTP/1.1 client (gateway.upstream_client) against scripted upstream sockets.

Each upstream here is a real loopback listener playing a script of raw bytes, so framing, connection
reuse (counted as accepted connections) and every way an upstream can misbehave are observable.
Tests that depend on the proxy policy (what may be resent, what a failure answers) go through a
real gateway; the rest talk to `UpstreamClient` directly.
"""
from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common.settings import Settings
from gateway.discovery import StaticDiscovery
from gateway.proxy import GatewayError, Proxy
from gateway.upstream_client import (
    ConnectFailed,
    Connection,
    InvalidRequest,
    ProtocolError,
    ReadTimeout,
    Response,
    UpstreamClient,
    origin,
    prepare,
)
from tests.gateway.conftest import Lab
from tests.gateway.servers import GATEWAY_SECRET, Peer, assert_error
from tests.support.waiting import wait_for

Headers = dict[str, str]
Script = Callable[[Peer, int], None]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def answering(*replies: bytes) -> Script:
    """Every connection answers its requests with `replies` in turn (the last one repeating) until
    the client closes it."""
    def script(peer: Peer, index: int) -> None:
        sent = 0
        while peer.read_request() is not None:
            peer.send(replies[min(sent, len(replies) - 1)])
            sent += 1
    return script


def per_connection(*scripts: Script) -> Script:
    """Connection n plays scripts[n]; later connections play the last one."""
    return lambda peer, index: scripts[min(index, len(scripts) - 1)](peer, index)


@pytest.fixture
def client(lab: Lab) -> Iterator[UpstreamClient]:
    """A client closed before the lab's upstreams stop (it depends on `lab`)."""
    client = UpstreamClient(connect_timeout=2, read_timeout=2)
    yield client
    client.close()


def fetch(
    client: UpstreamClient, url: str, method: str = "GET", target: str = "/x", body: bytes = b"",
    headers: list[tuple[str, str]] | None = None, *, replayable: bool = True,
) -> tuple[Response, bytes]:
    """One exchange, its body read to the end and the response closed."""
    response = client.send(origin(url), prepare(method, target, headers or [], body), replayable=replayable)
    try:
        return response, b"".join(response)
    finally:
        response.close()


# --- Framing of requests and responses ------------------------------------------------------------


def test_request_is_one_well_framed_message(lab: Lab, client: UpstreamClient) -> None:
    upstream = lab.scripted(answering(OK))
    fetch(client, upstream.url, "POST", "/p?q=1", b"abc", [("X-A", "1"), ("x-b", "two words")])
    fetch(client, upstream.url, "POST", "/p", b"")
    fetch(client, upstream.url + "/base", "GET", "/g")
    assert upstream.requests == [
        b"POST /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-A: 1\r\nx-b: two words\r\n"
        b"Content-Length: 3\r\n\r\nabc" % upstream.port,
        b"POST /p HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n\r\n" % upstream.port,
        b"GET /base/g HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % upstream.port,
    ]


def test_content_length_body_headers_and_reuse(lab: Lab, client: UpstreamClient) -> None:
    reply = (b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n"
             b"X-Odd-CASE:   spaced value \t\r\n\r\nhello")
    upstream = lab.scripted(answering(reply))
    for _ in range(3):
        response, body = fetch(client, upstream.url)
        assert (response.status, response.reason, body) == (201, "Created", b"hello")
        assert response.headers == [
            ("Content-Length", "5"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2"),
            ("X-Odd-CASE", "spaced value"),
        ]
    assert upstream.accepted == 1 and len(upstream.requests) == 3
    assert client.idle_count(origin(upstream.url)) == 1


def test_chunked_body_is_decoded_and_the_connection_reused(lab: Lab, client: UpstreamClient) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: identity\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\nA \r\n, chunked!\r\n0\r\nX-Trailer: t\r\n\r\n")
    upstream = lab.scripted(answering(chunked, OK))
    response, body = fetch(client, upstream.url)
    assert body == b"hello world, chunked!"
    assert ("Transfer-Encoding", "chunked") in response.headers  # the proxy drops it as hop-by-hop
    assert fetch(client, upstream.url)[1] == b"ok"
    assert upstream.accepted == 1


def test_chunked_with_a_content_length_is_read_by_chunks_and_not_reused(
    lab: Lab, client: UpstreamClient
) -> None:
    smuggling = (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"4\r\nbody\r\n0\r\n\r\n")
    upstream = lab.scripted(answering(smuggling))
    assert fetch(client, upstream.url)[1] == b"body"
    fetch(client, upstream.url)
    assert upstream.accepted == 2


@pytest.mark.parametrize(
    ("reply", "body", "server_closes"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"until close " * 10_000,
         b"until close " * 10_000, True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nold!", b"old!", False),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbye!", b"bye!", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", b"ok", False),  # bytes past the answer
    ],
    ids=["no length: until close", "HTTP/1.0", "Connection: close", "stray bytes"],
)
def test_connections_that_cannot_carry_another_request_are_not_reused(
    lab: Lab, client: UpstreamClient, reply: bytes, body: bytes, server_closes: bool
) -> None:
    closed_by_gateway: list[bool] = []

    def script(peer: Peer, index: int) -> None:
        peer.read_request()
        peer.send(reply)
        if not server_closes:
            closed_by_gateway.append(peer.wait_closed())

    upstream = lab.scripted(script)
    assert fetch(client, upstream.url)[1] == body
    assert fetch(client, upstream.url)[1] == body
    assert upstream.accepted == 2
    assert client.idle_count(origin(upstream.url)) == 0
    if not server_closes:
        wait_for(lambda: len(closed_by_gateway) == 2, timeout=5, what="both connections closed")
        assert closed_by_gateway == [True, True]


@pytest.mark.parametrize(
    ("method", "reply"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b'HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nETag: "x"\r\n\r\n'),
    ],
    ids=["HEAD with length", "HEAD chunked", "204", "304"],
)
def test_bodyless_answers_end_at_the_head(
    lab: Lab, client: UpstreamClient, method: str, reply: bytes
) -> None:
    upstream = lab.scripted(answering(reply, OK))
    response, body = fetch(client, upstream.url, method)
    assert body == b""
    assert fetch(client, upstream.url)[1] == b"ok"  # the next answer was not eaten as a body
    assert upstream.accepted == 1


def test_interim_responses_are_skipped(lab: Lab, client: UpstreamClient) -> None:
    interim = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
               b"HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\ndone")
    upstream = lab.scripted(answering(interim))
    response, body = fetch(client, upstream.url, "POST", body=b"{}")
    assert (response.status, response.headers, body) == (202, [("Content-Length", "4")], b"done")


def test_interim_response_reaches_the_client_as_the_final_one(lab: Lab, auth: Headers) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\ncreated"
    upstream = lab.scripted(answering(interim))
    gateway = lab.gateway({"orders": upstream.url})
    reply = gateway.request("POST", "/api/orders/", b"{}", auth)
    assert (reply.status, reply.body) == (201, b"created")


def test_early_answer_to_a_request_still_being_sent_is_read(lab: Lab, client: UpstreamClient) -> None:
    def refuse_unread(peer: Peer, index: int) -> None:
        if index == 0:  # answer from the head alone and hang up with the body unread
            while b"\r\n\r\n" not in peer.sock.recv(65536):
                pass
            peer.send(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big!")
            return
        answering(OK)(peer, index)

    upstream = lab.scripted(refuse_unread)
    response, body = fetch(client, upstream.url, "POST", body=b"x" * 8_000_000, replayable=False)
    assert (response.status, body) == (413, b"too big!")
    assert fetch(client, upstream.url)[1] == b"ok"
    assert upstream.accepted == 2  # the connection that refused is not used again


# --- Broken and malformed answers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "hangs_up"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly a part", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", False),
    ],
    ids=["short content-length", "short chunk", "bad chunk size", "chunk without CRLF", "0x chunk size"],
)
def test_body_broken_off_raises_and_the_connection_is_closed(
    lab: Lab, client: UpstreamClient, reply: bytes, hangs_up: bool
) -> None:
    closed_by_gateway: list[bool] = []

    def script(peer: Peer, index: int) -> None:
        peer.read_request()
        peer.send(reply)
        if not hangs_up:  # the body is malformed, not cut: the gateway must be the one to close
            closed_by_gateway.append(peer.wait_closed())

    upstream = lab.scripted(script)
    response = client.send(origin(upstream.url), prepare("GET", "/", [], b""), replayable=True)
    with pytest.raises(ProtocolError):
        b"".join(response)
    response.close()
    assert client.idle_count(origin(upstream.url)) == 0
    if not hangs_up:
        wait_for(lambda: closed_by_gateway, timeout=5, what="the gateway to close the connection")
        assert closed_by_gateway == [True]


def test_body_broken_off_aborts_the_client_connection(lab: Lab, auth: Headers) -> None:
    cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly a part"
    upstream = lab.scripted(lambda peer, index: (peer.read_request(), peer.send(cut)))
    gateway = lab.gateway({"orders": upstream.url})
    with pytest.raises(http.client.IncompleteRead):  # never passed off as a complete body
        gateway.request("GET", "/api/orders/", headers=auth)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 2OO OK\r\nContent-Length: 0",
        b"ICY 200 OK\r\nContent-Length: 0",
        b"HTTP/2 200\r\nContent-Length: 0",
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n continued\r\nContent-Length: 0",
        b"HTTP/1.1 200 OK\r\nContent-Length : 0",
        b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nContent-Length: 0",
        b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * (70 * 1024),
        b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 101 + b"Content-Length: 0",
    ],
    ids=["status not a number", "not HTTP", "HTTP/2", "obs-fold", "space before colon", "NUL",
         "no colon", "conflicting lengths", "negative length", "unknown transfer-coding", "101",
         "head over 64 KiB", "over 100 headers"],
)
def test_malformed_answers_are_502(lab: Lab, auth: Headers, head: bytes) -> None:
    upstream = lab.scripted(answering(head + b"\r\n\r\n"))
    gateway = lab.gateway({"orders": upstream.url})
    assert_error(gateway.request("GET", "/api/orders/", headers=auth), 502, "upstream_unavailable")
    assert len(upstream.requests) == 1  # and never resent


# --- Pooled connections the upstream closed ---------------------------------------------------------


def test_idle_connection_the_upstream_closed_is_not_used(lab: Lab, auth: Headers) -> None:
    def answer_once(peer: Peer, index: int) -> None:  # a keep-alive timeout right after the answer
        peer.read_request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    upstream = lab.scripted(answer_once)
    gateway = lab.gateway({"orders": upstream.url})
    for n in range(3):
        assert gateway.request("POST", "/api/orders/", b'{"n": %d}' % n, auth).status == 200
        assert upstream.finished.acquire(timeout=5)  # the upstream has closed that connection
    assert [request.rpartition(b"\r\n\r\n")[2] for request in upstream.requests] == [
        b'{"n": 0}', b'{"n": 1}', b'{"n": 2}'
    ]
    assert upstream.accepted == 3


def test_close_racing_the_send_is_retried_when_nothing_arrived(
    lab: Lab, auth: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered = threading.Event()

    def answer_then_reset(peer: Peer, index: int) -> None:
        peer.read_request()
        peer.send(OK)
        answered.wait(5)  # the answer was read: only the idle connection is lost
        peer.reset()

    upstream = lab.scripted(per_connection(answer_then_reset, answering(OK)))
    gateway = lab.gateway({"orders": upstream.url})
    assert gateway.request("GET", "/api/orders/", headers=auth).status == 200
    answered.set()
    real_probe = Connection.looks_alive

    def probe_just_before_the_reset(conn: Connection) -> bool:
        wait_for(lambda: not real_probe(conn), timeout=5, what="the reset to arrive")
        return True  # the race: the probe ran a moment before the reset came in

    monkeypatch.setattr(Connection, "looks_alive", probe_just_before_the_reset)
    reply = gateway.request("POST", "/api/orders/", b'{"pay": 1}', auth)  # not replayable, yet safe:
    assert reply.status == 200  # the send failed, so the upstream cannot have the request
    assert [request.split(b" ", 1)[0] for request in upstream.requests] == [b"GET", b"POST"]
    assert upstream.accepted == 2


@pytest.mark.parametrize(
    ("method", "headers", "resent"),
    [
        ("GET", {}, True),
        ("PUT", {}, True),
        ("DELETE", {}, True),
        ("POST", {"Idempotency-Key": "k-1"}, True),
        ("POST", {}, False),
        ("PATCH", {}, False),
    ],
)
def test_reused_connection_closed_after_the_request_was_sent(
    lab: Lab, auth: Headers, method: str, headers: Headers, resent: bool
) -> None:
    def answer_one_then_drop_the_next(peer: Peer, index: int) -> None:
        peer.read_request()
        peer.send(OK)
        peer.read_request()  # read, then closed without a byte of answer

    upstream = lab.scripted(per_connection(answer_one_then_drop_the_next, answering(OK)))
    gateway = lab.gateway({"orders": upstream.url})
    assert gateway.request("GET", "/api/orders/", headers=auth).status == 200
    reply = gateway.request(method, "/api/orders/x/", b"{}", {**auth, **headers})
    if resent:
        assert (reply.status, reply.body) == (200, b"ok")
        assert upstream.accepted == 2 and len(upstream.requests) == 3
        assert upstream.requests[1] == upstream.requests[2]  # the same request, once more
    else:
        assert_error(reply, 502, "upstream_unavailable")
        assert upstream.accepted == 1 and len(upstream.requests) == 2  # never sent twice


def test_read_timeout_on_a_reused_connection_is_not_retried(lab: Lab) -> None:
    def answer_then_stall(peer: Peer, index: int) -> None:
        peer.read_request()
        peer.send(OK)
        peer.read_request()
        peer.hold()

    upstream = lab.scripted(answer_then_stall)
    client = UpstreamClient(connect_timeout=2, read_timeout=0.3)
    try:
        assert fetch(client, upstream.url)[1] == b"ok"
        with pytest.raises(ReadTimeout):
            fetch(client, upstream.url, replayable=True)
    finally:
        client.close()
    assert upstream.accepted == 1 and len(upstream.requests) == 2


# --- Closing, pool bounds, TLS ---------------------------------------------------------------------------


def test_closing_a_half_read_response_closes_its_connection(lab: Lab, client: UpstreamClient) -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 4000000\r\n\r\n" + b"z" * 4_000_000
    closed_by_gateway: list[bool] = []

    def script(peer: Peer, index: int) -> None:
        peer.read_request()
        try:
            peer.send(big if index == 0 else OK)
        except OSError:  # the gateway closed while the body was still being sent
            closed_by_gateway.append(True)
            return
        closed_by_gateway.append(peer.wait_closed())

    upstream = lab.scripted(script)
    response = client.send(origin(upstream.url), prepare("GET", "/", [], b""), replayable=True)
    first = next(iter(response))
    assert 0 < len(first) < 4_000_000
    response.close()
    wait_for(lambda: closed_by_gateway, timeout=5, what="the half-read connection to be closed")
    assert fetch(client, upstream.url)[1] == b"ok"
    assert upstream.accepted == 2


def test_unread_body_already_received_does_not_cost_the_connection(lab: Lab, client: UpstreamClient) -> None:
    upstream = lab.scripted(answering(OK))
    response = client.send(origin(upstream.url), prepare("GET", "/", [], b""), replayable=True)
    response.close()  # like a client that went away: the two body bytes came with the head
    assert fetch(client, upstream.url)[1] == b"ok"
    assert upstream.accepted == 1


def test_idle_connections_are_bounded_per_origin_and_by_origins(lab: Lab) -> None:
    first, second = lab.scripted(answering(OK)), lab.scripted(answering(OK))
    client = UpstreamClient(connect_timeout=2, read_timeout=2, maxsize=2, num_pools=1)
    try:
        request = prepare("GET", "/", [], b"")
        held = [client.send(origin(first.url), request, replayable=True) for _ in range(3)]
        for response in held:
            assert b"".join(response) == b"ok"
            response.close()
        assert first.accepted == 3
        assert client.idle_count(origin(first.url)) == 2  # the third was closed on its return
        fetch(client, second.url)
        assert client.idle_count(origin(second.url)) == 1
        assert client.idle_count(origin(first.url)) == 0  # the least recently used origin's pool went
        fetch(client, first.url)
        assert first.accepted == 4
    finally:
        client.close()


def test_concurrent_senders_never_share_a_connection(lab: Lab, client: UpstreamClient) -> None:
    def echo_body(peer: Peer, index: int) -> None:
        while (request := peer.read_request()) is not None:
            body = request.partition(b"\r\n\r\n")[2]
            peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    upstream = lab.scripted(echo_body)
    results: dict[int, bytes] = {}

    def call(n: int) -> None:
        for k in range(20):
            results[n * 100 + k] = fetch(client, upstream.url, "POST", body=b"%d" % (n * 100 + k))[1]

    threads = [threading.Thread(target=call, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {key: b"%d" % key for key in results} and len(results) == 80
    assert upstream.accepted <= 4


def test_header_injection_is_refused_before_any_upstream_is_contacted(lab: Lab) -> None:
    upstream = lab.scripted(answering(OK))
    with pytest.raises(InvalidRequest):
        prepare("GET", "/", [("X-A", "1\r\nX-User-Role: admin")], b"")
    with pytest.raises(InvalidRequest):
        prepare("GET", "/", [("X A", "1")], b"")
    with pytest.raises(InvalidRequest):
        prepare("GET", "/a b", [], b"")
    settings = Settings(env="test", jwt_secret=GATEWAY_SECRET).replace(upstreams={"orders": upstream.url})
    proxy = Proxy(settings, StaticDiscovery(settings))
    try:
        with pytest.raises(GatewayError) as caught:
            proxy.forward("orders", "GET", "/api/orders/", [("X-A", "evil\nX-User-Role: admin")], b"")
        assert (caught.value.status, caught.value.code) == (400, "bad_request")
        upstream_response = proxy.forward("orders", "GET", "/api/orders/", [("X-A", "fine")], b"")
        assert (upstream_response.status, b"".join(upstream_response)) == (200, b"ok")
        upstream_response.close()
    finally:
        proxy.close()
    assert len(upstream.requests) == 1 and b"evil" not in upstream.requests[0]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upstream.test")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def test_https_upstreams_are_verified_and_pooled(lab: Lab, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)

    def tls_script(peer: Peer, index: int) -> None:
        peer.sock.settimeout(5)
        peer.sock = server_side.wrap_socket(peer.sock, server_side=True)
        answering(OK)(peer, index)

    upstream = lab.scripted(tls_script)
    url = upstream.url.replace("http://", "https://")
    trusting = UpstreamClient(
        connect_timeout=2, read_timeout=2, tls_context=ssl.create_default_context(cafile=cert))
    try:
        assert [fetch(trusting, url)[1] for _ in range(3)] == [b"ok"] * 3
    finally:
        trusting.close()
    assert upstream.accepted == 1
    assert upstream.requests[0].startswith(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % upstream.port)
    default = UpstreamClient(connect_timeout=2, read_timeout=2)
    try:
        with pytest.raises(ConnectFailed):  # the system trust store does not know this certificate
            fetch(default, url)
    finally:
        default.close()
    assert len(upstream.requests) == 3
