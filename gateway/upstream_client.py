"""The gateway's HTTP/1.1 client for its upstream hop: keep-alive connection pools over plain sockets.

Why not urllib3 / http.client: profiled, they were most of the gateway's CPU per forwarded request
(URL parsing and pool-key building per call, header-by-header request building, and response headers
parsed through the stdlib `email` package). The hop needs far less: the request body is already
buffered, so one write carries request line, headers and body; the response head usually arrives
in one `recv` and is parsed with a regex per header; the body is streamed as received, framed by
Content-Length, chunked transfer-coding (decoded, because transfer-encoding is hop-by-hop and the
server in front re-frames it) or the connection's end, and never content-decoded.

Safety rules kept here (the proxy policy on top, `gateway.proxy`, decides failover):
- `ConnectFailed`: nothing was sent, so the caller may try another instance.
- A pooled connection is probed before reuse: one the upstream closed while idle reads as readable
  and is dropped before anything is sent on it.
- A close that races the probe shows as EOF or a reset before the first response byte on a reused
  connection. The request is then resent once, on a fresh connection, only when the upstream cannot
  have run it: not one byte of it could be written, or the caller says it is replayable (an
  idempotent method or an Idempotency-Key: running it twice is harmless). A POST whose bytes went
  out is never resent: a server that read it and died before answering looks just the same.
  Never resent after a response byte arrived, and never on a timeout.
- A connection returns to its pool only after its response was read completely and both sides
  left it reusable; anything else closes it.
- Malformed or oversized response heads are a `ProtocolError` (the gateway's 502), not a crash.
"""
from __future__ import annotations

import logging
import re
import select
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

logger = logging.getLogger("gateway")

MAX_HEAD = 64 * 1024  # bytes of one response head (status line and headers)
MAX_HEADERS = 100  # header (or trailer) lines of one response
MAX_INTERIM = 16  # 1xx responses skipped before the final one
RECV_SIZE = 64 * 1024  # bytes asked of one recv; also the largest body piece yielded
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # Content-Length: 0 even when the body is empty
POOL_MAXSIZE = 32  # idle connections kept per origin; more are opened (not waited for) under load
NUM_POOLS = 64  # origins whose idle connections are kept; the least recently used beyond that are closed

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_FIELD_VALUE = r"[^\x00-\x08\x0a-\x1f\x7f]*"  # no control characters except HTAB (RFC 9110 §5.5)
_REQUEST_FIELDS = re.compile(rf"(?:{_TOKEN}: {_FIELD_VALUE}\r\n)*\r\n")
_REQUEST_LINE = re.compile(rf"{_TOKEN} [!-~]+")
_STATUS_LINE = re.compile(rf"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ({_FIELD_VALUE}))?")
_RESPONSE_FIELD = re.compile(rf"({_TOKEN}):[ \t]*({_FIELD_VALUE})")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;.*)?")


class UpstreamError(Exception):
    """The exchange with an upstream failed."""


class ConnectFailed(UpstreamError):
    """No connection could be opened (refused, unresolvable, TLS handshake failed): nothing was sent."""


class ConnectTimeout(ConnectFailed):
    """Opening the connection took longer than the connect timeout: nothing was sent."""


class ReadTimeout(UpstreamError):
    """The request may have been sent and the upstream did not answer (or send on) within the read timeout."""


class ProtocolError(UpstreamError):
    """The connection broke, or the upstream answered something that is not valid HTTP/1.x."""


class InvalidRequest(ValueError):
    """A request the client cannot send as is (a header value with a line break, a bad name)."""


class _Stale(UpstreamError):
    """A reused connection turned out closed before any response byte arrived.

    `sent` is False when not one byte of the request could be written: the upstream cannot have it.
    """

    def __init__(self, message: str, *, sent: bool):
        super().__init__(message)
        self.sent = sent


class _PeerClosed(Exception):
    """EOF (or a reset: `reset`) while reading; `nothing_buffered`: not one unread byte had arrived."""

    def __init__(self, nothing_buffered: bool, reset: bool):
        super().__init__(f"the upstream {'reset' if reset else 'closed'} the connection")
        self.nothing_buffered = nothing_buffered
        self.reset = reset


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an instance's requests go: a connection target plus the path prefix of its base URL."""

    key: tuple[str, str, int]  # (scheme, host, port): instances sharing it share connections
    host: str
    port: int
    tls: bool
    host_header: str
    prefix: str


@lru_cache(maxsize=1024)
def origin(base_url: str) -> Origin:
    """Parse a base URL (`http(s)://host[:port][/path]`, validated by discovery); cached per URL."""
    parts = urlsplit(base_url)
    tls = parts.scheme == "https"
    default_port = 443 if tls else 80
    host = parts.hostname or ""
    port = parts.port or default_port
    if not host or parts.scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) base URL: {base_url!r}")
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default_port else f"{shown}:{port}"
    return Origin((parts.scheme, host, port), host, port, tls, host_header, parts.path.rstrip("/"))


@dataclass(frozen=True, slots=True)
class Request:
    """A request encoded once, whichever instance it goes to; only the request line and Host differ."""

    method: str
    target: str
    fields: bytes  # header lines, Content-Length and the blank line
    body: bytes

    def wire(self, to: Origin) -> bytes:
        line = f"{self.method} {to.prefix}{self.target} HTTP/1.1\r\nHost: {to.host_header}\r\n"
        return b"".join((line.encode("ascii"), self.fields, self.body))


def prepare(method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes) -> Request:
    """Encode `headers` (without Host, Content-Length or hop-by-hop ones) and frame `body`.

    Validated as one block because a CR or LF in a value would end the header early and let whatever
    follows pass as headers of the gateway's own making; raises InvalidRequest instead of sending it.
    """
    if not _REQUEST_LINE.fullmatch(f"{method} {target}"):
        raise InvalidRequest("the method or request target cannot be sent")
    lines = [f"{name}: {value}\r\n" for name, value in headers]
    if body or method in BODY_METHODS:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    # One line break per line we made (a value holding "\r\n" would make more), and each line well-formed.
    if text.count("\n") != len(lines) or not _REQUEST_FIELDS.fullmatch(text):
        raise InvalidRequest("a request header has an invalid name or a control character in its value")
    try:
        fields = text.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidRequest("a request header value is not ISO-8859-1") from None
    return Request(method, target, fields, body)


class Connection:
    """One socket to an origin, with the bytes received but not consumed yet (`_buf[_pos:]`)."""

    __slots__ = ("origin", "sock", "reused", "_buf", "_pos", "_poller")

    def __init__(self, to: Origin, sock: socket.socket):
        self.origin = to
        self.sock = sock
        self.reused = False  # has answered a request before: it may have gone stale in the pool
        self._buf = b""
        self._pos = 0
        self._poller: select.poll | None = None

    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def looks_alive(self) -> bool:
        """An idle connection must have nothing to read: readable means EOF, a reset, or stray bytes.

        The probe catches the usual stale case (the upstream closed an idle keep-alive connection a
        while ago) before anything is sent; `UpstreamClient.send` handles the close that races it.
        """
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return False
        if self._poller is None:  # poll, not select: descriptors above FD_SETSIZE are fine
            self._poller = select.poll()
            self._poller.register(self.sock, select.POLLIN)
        return not self._poller.poll(0)

    def close(self) -> None:
        self.sock.close()

    def _consume(self, end: int) -> None:
        if end >= len(self._buf):
            self._buf, self._pos = b"", 0  # don't keep a large drained buffer alive
        else:
            self._pos = end

    def _recv(self, size: int) -> bytes:
        try:
            data = self.sock.recv(size)
        except ConnectionError:  # a reset; a timeout (not a ConnectionError) propagates
            raise _PeerClosed(self.buffered() == 0, reset=True) from None
        if not data:
            raise _PeerClosed(self.buffered() == 0, reset=False)
        return data

    def read_until(self, separator: bytes, limit: int) -> bytes:
        """The bytes before the next `separator` (consumed with it); ProtocolError beyond `limit` bytes."""
        buf, pos = self._buf, self._pos
        end = buf.find(separator, pos)
        while end < 0:
            if len(buf) - pos > limit:
                raise ProtocolError("response head or line too long")
            data = self._recv(RECV_SIZE)
            searched = max(len(buf) - pos - len(separator) + 1, 0)
            buf, pos = buf[pos:] + data, 0
            self._buf, self._pos = buf, 0
            end = buf.find(separator, searched)
        if end - pos > limit:
            raise ProtocolError("response head or line too long")
        self._buf = buf
        self._consume(end + len(separator))
        return buf[pos:end]

    def read_some(self, size: int) -> bytes:
        """At most `size` bytes: buffered ones first, else one recv; raises _PeerClosed at EOF."""
        buf, pos = self._buf, self._pos
        if pos < len(buf):
            end = min(pos + size, len(buf))
            self._consume(end)
            return buf[pos:end]
        return self._recv(size)

    def skip_buffered_bytes(self, expected: bytes) -> bool:
        """Consume `expected` if it is exactly what comes next and already buffered (no blocking)."""
        if not self._buf.startswith(expected, self._pos):
            return False
        self._consume(self._pos + len(expected))
        return True

    def skip_buffered(self, size: int) -> bool:
        """Discard `size` bytes if they are all buffered already (no blocking); whether it could."""
        if self.buffered() < size:
            return False
        self._consume(self._pos + size)
        return True


class Response:
    """The final response to one request: status, headers, and its body as an iterable of bytes.

    Iterate it at most once, then `close()` it (always, however the iteration ended): that returns
    the connection to the pool when the body was read completely, and closes it otherwise.
    """

    __slots__ = ("status", "reason", "headers", "_conn", "_pool", "_length", "_chunked", "_keep_alive")

    def __init__(
        self, conn: Connection, pool: UpstreamClient, status: int, reason: str,
        headers: list[tuple[str, str]], length: int | None, chunked: bool, keep_alive: bool,
    ):
        self.status = status
        self.reason = reason
        self.headers = headers  # (name, value) in the upstream's order and case; repeats kept
        self._conn: Connection | None = conn
        self._pool = pool
        self._length = length  # bytes still to read; None: chunked or until the connection closes
        self._chunked = chunked
        self._keep_alive = keep_alive
        if length == 0:
            self._finish()

    def __iter__(self) -> Iterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        try:
            if self._chunked:
                yield from self._read_chunked(conn)
            elif self._length is None:
                yield from self._read_until_close(conn)
            else:
                yield from self._read_length(conn)
        except Exception as exc:  # not GeneratorExit: by then close() may have pooled the connection
            self._abort()
            if isinstance(exc, TimeoutError):
                raise ReadTimeout(f"the body stalled: {exc}") from exc
            if isinstance(exc, _PeerClosed):
                raise ProtocolError("the upstream closed the connection before the body ended") from None
            if isinstance(exc, OSError):
                raise ProtocolError(f"the connection broke during the body: {exc}") from exc
            raise
        self._finish()

    # Both framed readers hand the connection back before yielding the body's last piece: the
    # server in front may answer its client with that piece before it asks for the next one, and
    # the client's next request should find the connection in the pool.

    def _read_length(self, conn: Connection) -> Iterator[bytes]:
        while self._length:
            data = conn.read_some(min(self._length, RECV_SIZE))
            self._length -= len(data)
            if not self._length:
                self._finish()
            yield data

    def _read_until_close(self, conn: Connection) -> Iterator[bytes]:
        while True:
            try:
                data = conn.read_some(RECV_SIZE)
            except _PeerClosed as exc:
                if exc.reset:  # only an orderly close ends such a body; a reset cuts it
                    raise
                return  # the end of the body (the connection is not reused: see _framing)
            yield data

    def _read_chunked(self, conn: Connection) -> Iterator[bytes]:
        while size := _chunk_size(conn.read_until(b"\r\n", MAX_HEAD)):
            while size:
                data = conn.read_some(min(size, RECV_SIZE))
                size -= len(data)
                if not size and conn.skip_buffered_bytes(b"\r\n0\r\n\r\n"):  # the end, trailer-less
                    self._finish()
                    yield data
                    return
                yield data
            if conn.read_until(b"\r\n", 2) != b"":
                raise ProtocolError("a chunk is not followed by CRLF")
        # The trailer section is read and dropped: trailers only exist in chunked framing, which the
        # server in front of the gateway redoes.
        for _ in range(MAX_HEADERS + 1):
            if conn.read_until(b"\r\n", MAX_HEAD) == b"":
                return
        raise ProtocolError("too many trailer fields")

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._keep_alive and conn.buffered() == 0:
            self._pool.release(conn)
        else:  # bytes past the response mean the framing is wrong: never reuse such a connection
            conn.close()

    def close(self) -> None:
        """Return the connection if the response was read completely (or its rest is already
        buffered, so reading it costs no wait); otherwise close it. Safe to call twice."""
        conn = self._conn
        if conn is None:
            return
        if self._length is not None and not self._chunked and conn.skip_buffered(self._length):
            self._length = 0
            self._finish()
            return
        self._abort()

    def _abort(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _write(conn: Connection, data: bytes) -> int:
    """Send the whole request (one `send` unless the socket buffer fills); the bytes the kernel
    accepted, which are fewer than `data` when the connection broke.

    A broken write is not an error by itself: an upstream may answer early (a 413, a 401) and close
    without reading everything, and that answer is still to be read. Whether anything was written
    at all decides whether a dead pooled connection may be retried for a non-replayable request.
    """
    view, written = memoryview(data), 0
    try:
        while written < len(view):
            written += conn.sock.send(view[written:])
    except TimeoutError as exc:
        raise ReadTimeout(f"sending the request timed out: {exc}") from exc
    except OSError:  # EPIPE, ECONNRESET: reading the answer tells what happened
        pass
    return written


def _chunk_size(line: bytes) -> int:
    match = _CHUNK_SIZE.fullmatch(line)
    if match is None:
        raise ProtocolError(f"invalid chunk size line {line[:40]!r}")
    return int(match.group(1), 16)


def parse_head(head: bytes) -> tuple[int, int, str, list[tuple[str, str]]]:
    """(minor HTTP version, status, reason, headers) of a response head, or ProtocolError.

    Strict: an obsolete line folding, whitespace before the colon, a control character or a line
    without a colon is refused (a proxy must not guess at framing, RFC 9112 §5).
    """
    lines = head.decode("latin-1").split("\r\n")
    if len(lines) > MAX_HEADERS + 1:
        raise ProtocolError("too many response headers")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise ProtocolError(f"invalid status line {lines[0][:60]!r}")
    headers = []
    for line in lines[1:]:
        field = _RESPONSE_FIELD.fullmatch(line)
        if field is None:
            raise ProtocolError(f"invalid response header line {line[:60]!r}")
        headers.append((field.group(1), field.group(2).rstrip(" \t")))
    minor, status, reason = status_line.groups()
    return int(minor), int(status), reason or "", headers


def _framing(
    method: str, minor: int, status: int, headers: list[tuple[str, str]]
) -> tuple[int | None, bool, bool]:
    """(body length or None, chunked, keep_alive) of a final response (RFC 9112 §6.3)."""
    lengths, codings, tokens = [], [], []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "content-length":
            lengths.extend(part.strip() for part in value.split(","))
        elif lowered == "transfer-encoding":
            codings.extend(part.strip().lower() for part in value.split(",") if part.strip())
        elif lowered == "connection":
            tokens.extend(part.strip().lower() for part in value.split(","))
    keep_alive = "keep-alive" in tokens if minor == 0 else "close" not in tokens
    if method == "HEAD" or status in (204, 304):
        return 0, False, keep_alive
    if codings:
        if codings != ["chunked"]:
            raise ProtocolError(f"unsupported transfer-coding {', '.join(codings)!r}")
        # A Content-Length next to chunked is ignored, and such a message may be an attack on
        # framing: read it by its chunks and close the connection afterwards.
        return None, True, keep_alive and not lengths and minor == 1
    if lengths:
        if len(set(lengths)) != 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
            raise ProtocolError(f"invalid Content-Length {', '.join(lengths)!r}")
        return int(lengths[0]), False, keep_alive
    return None, False, False  # delimited by the end of the connection


class UpstreamClient:
    """Sends prepared requests over pooled keep-alive connections, per origin; thread-safe.

    Up to `maxsize` idle connections are kept per origin (more are opened, not waited for, under
    load, and closed when they come back to a full pool); the idle connections of the least
    recently used origins beyond `num_pools` are closed.
    """

    def __init__(
        self, *, connect_timeout: float, read_timeout: float, maxsize: int = POOL_MAXSIZE, num_pools: int = NUM_POOLS,
        tls_context: ssl.SSLContext | None = None,
    ):
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._maxsize = maxsize
        self._num_pools = num_pools
        self._idle: OrderedDict[tuple[str, str, int], list[Connection]] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False
        self._tls_context = tls_context  # None: the system's trust store, made when first needed

    def send(self, to: Origin, request: Request, *, replayable: bool) -> Response:
        """Send `request` to `to` and read the final response's head; the body is left to stream.

        Raises ConnectFailed (nothing sent: failing over is safe), ReadTimeout or ProtocolError.
        """
        data = request.wire(to)
        conn = self._idle_connection(to)
        if conn is not None:
            try:
                return self._exchange(conn, request.method, data)
            except _Stale as exc:
                if exc.sent and not replayable:
                    raise ProtocolError(f"{exc} (not resent: {request.method} is not replayable)") from exc
                logger.debug("resending on a fresh connection to %s: %s", to.host_header, exc)
        return self._exchange(self._connect(to), request.method, data)

    def _exchange(self, conn: Connection, method: str, data: bytes) -> Response:
        try:
            return self._send_and_read_head(conn, method, data)
        except BaseException:
            conn.close()
            raise

    def _send_and_read_head(self, conn: Connection, method: str, data: bytes) -> Response:
        written = _write(conn, data)
        for interim in range(MAX_INTERIM + 1):
            try:
                head = conn.read_until(b"\r\n\r\n", MAX_HEAD)
            except TimeoutError as exc:
                raise ReadTimeout(f"no answer in time: {exc}") from exc
            except _PeerClosed as exc:
                if conn.reused and interim == 0 and exc.nothing_buffered:
                    raise _Stale(f"a reused connection was found closed ({exc})", sent=written > 0) from None
                raise ProtocolError(f"no complete answer: {exc}") from None
            except OSError as exc:
                raise ProtocolError(f"reading the answer failed: {exc}") from exc
            minor, status, reason, headers = parse_head(head)
            if status >= 200:
                length, chunked, keep_alive = _framing(method, minor, status, headers)
                reusable = keep_alive and written == len(data)  # a half-sent request spoils the connection
                return Response(conn, self, status, reason, headers, length, chunked, reusable)
            if status == 101:
                raise ProtocolError("the upstream switched protocols, which the gateway never asks for")
        raise ProtocolError("too many interim (1xx) responses")

    def _connect(self, to: Origin) -> Connection:
        try:
            sock = socket.create_connection((to.host, to.port), timeout=self._connect_timeout)
        except TimeoutError as exc:
            raise ConnectTimeout(f"connecting to {to.host_header} timed out") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {to.host_header}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the request is one write
            if to.tls:
                sock = self._tls().wrap_socket(sock, server_hostname=to.host)
            sock.settimeout(self._read_timeout)
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeout(f"the TLS handshake with {to.host_header} timed out") from exc
        except OSError as exc:
            sock.close()
            raise ConnectFailed(f"cannot set up the connection to {to.host_header}: {exc}") from exc
        return Connection(to, sock)

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            self._tls_context = ssl.create_default_context()  # verifies certificates and host names
        return self._tls_context

    def _idle_connection(self, to: Origin) -> Connection | None:
        """The most recently returned idle connection that still looks alive, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(to.key)
                if not idle:
                    return None
                self._idle.move_to_end(to.key)
                conn = idle.pop()
            if conn.looks_alive():
                return conn
            conn.close()

    def release(self, conn: Connection) -> None:
        """Take back a connection whose response was read completely (called by Response)."""
        conn.reused = True
        evicted: list[Connection] = []
        with self._lock:
            idle = self._idle.get(conn.origin.key)
            if idle is None and not self._closed:
                idle = self._idle[conn.origin.key] = []
                while len(self._idle) > self._num_pools:
                    evicted.extend(self._idle.popitem(last=False)[1])
            if idle is not None and len(idle) < self._maxsize:
                idle.append(conn)
                conn = None
        for stale in evicted:
            stale.close()
        if conn is not None:
            conn.close()

    def idle_count(self, to: Origin) -> int:
        """Idle connections kept for `to` (for tests and diagnostics)."""
        with self._lock:
            return len(self._idle.get(to.key, ()))

    def close(self) -> None:
        """Close every idle connection; connections in use are closed when their responses end."""
        with self._lock:
            self._closed = True
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()
