"""Real loopback servers for the gateway tests: the gateway itself, echo upstreams and misbehaving ones.

Nothing here mocks the proxy: the gateway runs under werkzeug in a thread and talks HTTP to
upstreams that are real sockets. The echo upstream is a stdlib HTTP/1.1 server (werkzeug's closes
every connection) so the gateway's connection reuse is observable.
"""
from __future__ import annotations

import gzip
import http.client
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from common.settings import Settings
from gateway import create_app
from gateway.discovery import Discovery
from tests.support.servers import POLL, LoopbackHTTPServer, closed_port, serve_in_thread

GATEWAY_SECRET = "gateway-test-secret-0123456789abcdef"  # >= 32 bytes: PyJWT warns on shorter HS256 keys
SERVICES = ("orders", "payments", "notifications")
ERROR_KEYS = {"error", "message", "details", "request_id"}
STREAM_BLOCK = bytes(range(256)) * 256  # 64 KiB


@dataclass
class Seen:
    """One request as an upstream received it."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    client_port: int

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers with what it received; a few path segments ask for special answers.

    `.../_status/<code>`: that status plus extra and hop-by-hop headers; `.../_stream/<n>`: n bytes,
    chunked; `.../_gzip`: a gzip-encoded body; anything else: the request as JSON.
    """

    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be counted
    timeout = 5  # an idle kept-alive connection ends on its own
    server: EchoServer

    def setup(self) -> None:
        super().setup()
        self.server.count_connection()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        seen = Seen(self.command, path, query, list(self.headers.items()), body, self.client_address[1])
        self.server.seen.append(seen)
        segments = path.rstrip("/").split("/")
        if "_status" in segments:
            status = int(segments[segments.index("_status") + 1])
            headers = [
                ("Content-Type", "application/problem+json"), ("X-Upstream", "yes"),
                ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                ("Connection", "X-Hop"), ("X-Hop", "secret"), ("Keep-Alive", "timeout=5"),
                ("Proxy-Authenticate", "Basic"),
            ]
            self._reply(status, b'{"custom": true}' if status not in (204, 304) else b"", headers)
        elif "_stream" in segments:
            self._stream(int(segments[segments.index("_stream") + 1]))
        elif "_gzip" in segments:
            self._reply(200, gzip.compress(b"zipped " * 100), [("Content-Encoding", "gzip")])
        else:
            echo = {"method": seen.method, "path": path, "query": query, "body": body.decode("latin-1"),
                    "headers": seen.headers, "port": self.server.server_port}
            self._reply(200, json.dumps(echo).encode(), [("Content-Type", "application/json")])

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def _reply(self, status: int, body: bytes, headers: Iterable[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream(self, size: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in stream_chunks(size):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")


def stream_chunks(size: int) -> Iterator[bytes]:
    """The bytes `.../_stream/<size>` answers with, in the chunks it sends them."""
    while size > 0:
        yield STREAM_BLOCK[:size]
        size -= len(STREAM_BLOCK)


class EchoServer(LoopbackHTTPServer):
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.connections = 0
        self._lock = threading.Lock()
        super().__init__(_EchoHandler)

    def count_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the gateway closing a kept-alive connection is not a failure


class _Listener:
    """A loopback TCP listener whose thread hands each accepted connection, with its index, to
    `_handle` until `stop()`; it counts them (`accepted`). Subclasses set their state first."""

    def __init__(self):
        self.accepted = 0
        self.stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            index, self.accepted = self.accepted, self.accepted + 1
            self._handle(sock, index)

    def _handle(self, sock: socket.socket, index: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()


class RawUpstream(_Listener):
    """A TCP listener that misbehaves: `hang` accepts and never answers; `drop` reads the request and
    closes without answering; `truncate` promises 1000 bytes of body and sends 10."""

    def __init__(self, mode: str):
        self.mode = mode
        self.received: list[bytes] = []
        self._held: list[socket.socket] = []
        super().__init__()

    def _handle(self, conn: socket.socket, index: int) -> None:
        if self.mode == "hang":
            self._held.append(conn)
            return
        with conn:
            self.received.append(_read_head(conn))
            if self.mode == "truncate":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)

    def stop(self) -> None:
        super().stop()
        for conn in self._held:
            conn.close()


def _read_head(conn: socket.socket) -> bytes:
    conn.settimeout(2)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class Peer:
    """The upstream's end of one connection a `ScriptedUpstream` accepted."""

    def __init__(self, sock: socket.socket, upstream: ScriptedUpstream):
        self.sock = sock
        self._upstream = upstream
        self._pending = b""

    def read_request(self) -> bytes | None:
        """One whole request (head and Content-Length body) as sent, or None when the gateway closed."""
        data = self._pending
        while b"\r\n\r\n" not in data:
            chunk = self._recv()
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = self._recv()
            if not chunk:
                return None
            rest += chunk
        request, self._pending = head + b"\r\n\r\n" + rest[:length], rest[length:]
        self._upstream.requests.append(request)
        return request

    def _recv(self) -> bytes:
        """The next bytes, or b"" once the gateway closed its end or the upstream is stopping."""
        while not self._upstream.stopping.is_set():
            try:
                return self.sock.recv(65536)
            except TimeoutError:
                continue
        return b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reset(self) -> None:
        """Close with a TCP reset instead of a FIN, as a crashed or timed-out peer may."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def hold(self) -> None:
        """Keep the connection open without answering until the upstream stops (for read timeouts)."""
        self._upstream.stopping.wait()

    def wait_closed(self) -> bool:
        """Block until the gateway closes its end (True), or the upstream is stopped (False)."""
        while not self._upstream.stopping.is_set():
            try:
                if self.sock.recv(65536) == b"":
                    return True
            except TimeoutError:
                continue
            except OSError:  # reset
                return True
        return False


class ScriptedUpstream(_Listener):
    """A TCP listener that plays `script(peer, index)` on the `index`-th connection it accepts, in a
    thread of its own, and closes the connection when the script returns. It counts the connections
    (`accepted`), records every request read (`requests`) and sets `finished` after each script."""

    def __init__(self, script: Callable[[Peer, int], None]):
        self.script = script
        self.requests: list[bytes] = []
        self.finished = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        super().__init__()

    def _handle(self, sock: socket.socket, index: int) -> None:
        sock.settimeout(POLL * 10)
        thread = threading.Thread(target=self._play, args=(sock, index), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _play(self, sock: socket.socket, index: int) -> None:
        peer = Peer(sock, self)
        try:
            self.script(peer, index)
        except OSError:
            pass  # the gateway hung up: that is for the test to assert on, not for this thread
        finally:
            peer.sock.close()  # a script may have replaced it (wrapped in TLS)
            self.finished.release()

    def stop(self) -> None:
        super().stop()
        for thread in self._threads:
            thread.join(timeout=5)


def closed_url() -> str:
    """The URL of a loopback port nothing listens on."""
    return f"http://127.0.0.1:{closed_port()}"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class ServedGateway:
    def __init__(self, settings: Settings, discovery: Discovery | None = None):
        self.settings = settings
        self.app = create_app(settings, discovery=discovery)
        self._served = serve_in_thread(self.app)
        self.port = self._served.port

    def request(
        self, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None, *, chunked: bool = False,
    ) -> Reply:
        """One request over a fresh real connection (the werkzeug server closes each one anyway)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def raw(self, request: bytes) -> Reply:
        """Send bytes no well-behaved client library would produce, and parse the answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(request)
            response = http.client.HTTPResponse(sock)
            try:
                response.begin()
                return Reply(response.status, response.headers, response.read())
            finally:
                response.close()

    def stop(self) -> None:
        self._served.stop()


def assert_error(reply: Reply, status: int, code: str) -> dict:
    """The gateway's error contract: the status, the four keys, JSON, and the request id echoed."""
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"] == "application/json"
    body = reply.json()
    assert set(body) == ERROR_KEYS
    assert body["error"] == code
    assert body["request_id"] == reply.headers["X-Request-ID"]
    return body
