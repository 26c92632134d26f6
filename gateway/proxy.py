"""The proxy policy: which instance gets a request, which headers travel, and what a failure answers.

One `UpstreamClient` per gateway process (gateway.upstream_client: a small HTTP/1.1 client with
keep-alive pools, built for this hop because urllib3 and http.client cost most of the gateway's CPU)
keeps connections to each upstream, so a request does not pay a TCP handshake. Failover to the next
instance is decided here, where the rule "never resend a request that may have reached an upstream"
is kept: only a connection that could not even be opened moves on.
"""
from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from common.http import REQUEST_ID_HEADER
from common.settings import Settings
from gateway.auth import is_identity_header
from gateway.discovery import Discovery
from gateway.upstream_client import (
    ConnectFailed,
    ConnectTimeout,
    InvalidRequest,
    ReadTimeout,
    Response,
    UpstreamClient,
    UpstreamError,
    origin,
    prepare,
)

logger = logging.getLogger("gateway")

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded in either direction.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
     "transfer-encoding", "upgrade"}
)
# Recomputed by the gateway rather than copied: the host is the upstream's, the body is re-framed
# from the buffered bytes, and `Expect` was already answered by the server in front of the gateway.
_REQUEST_ONLY = frozenset({"host", "content-length", "expect", "x-forwarded-host", "x-forwarded-proto"})
CHUNK_SIZE = 64 * 1024
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class GatewayError(Exception):
    """A response the gateway itself produces, rendered in the services' error shape."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def read_body(stream: BinaryIO, declared_length: str | None, limit: int) -> bytes:
    """The whole request body, or 413 as soon as it is known to exceed `limit`.

    Buffering (bounded by `limit`) is what makes a connection-refused failover safe to resend, and a
    declared length over the limit is refused before a byte is read or any upstream is contacted.
    A body the server cannot frame (bad chunk, malformed length) is the client's fault: 400, not 500.
    """
    if declared_length is not None:
        declared_length = declared_length.strip()
        if not (declared_length.isascii() and declared_length.isdigit()):
            raise GatewayError(400, "bad_request", "The Content-Length header is malformed.")
        if int(declared_length) > limit:
            raise _too_large(limit)
    chunks, total = [], 0
    try:
        while chunk := stream.read(min(CHUNK_SIZE, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise _too_large(limit)
    except OSError:  # werkzeug's and gunicorn's errors for a broken chunked body
        raise GatewayError(400, "bad_request", "The request body could not be read.") from None
    return b"".join(chunks)


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, "payload_too_large", f"The request body exceeds {limit} bytes.")


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Hop-by-hop names: the fixed set plus every header the `Connection` header names."""
    names = set(HOP_BY_HOP)
    for name, value in headers:
        if name.lower() == "connection":
            names.update(token.strip().lower() for token in value.split(",") if token.strip())
    return names


def upstream_request_headers(
    incoming: Iterable[tuple[str, str]],
    *,
    request_id: str,
    identity: dict[str, str],
    client_addr: str | None,
    host: str,
    scheme: str,
) -> list[tuple[str, str]]:
    """The client's headers as the upstream should see them, as (name, value) pairs in order.

    Every client `X-User-*` header is dropped before the gateway's own identity headers are added, so a
    client can never smuggle an identity past the gateway, whatever the case of the name. Host and
    Content-Length are left to the upstream client, which knows the instance and the body.
    """
    incoming = list(incoming)
    drop = _connection_tokens(incoming) | _REQUEST_ONLY | {REQUEST_ID_HEADER.lower()}
    drop.update(name.lower() for name in identity)
    headers = []
    forwarded_for = []
    for name, value in incoming:
        lowered = name.lower()
        if lowered == "x-forwarded-for":
            forwarded_for.append(value)
        elif lowered not in drop and not is_identity_header(name):
            headers.append((name, value))
    if client_addr:
        forwarded_for.append(client_addr)
    if forwarded_for:
        headers.append(("X-Forwarded-For", ", ".join(forwarded_for)))
    headers.append(("X-Forwarded-Host", host))
    headers.append(("X-Forwarded-Proto", scheme))
    headers.append((REQUEST_ID_HEADER, request_id))
    headers.extend(identity.items())
    return headers


def client_response_headers(upstream: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's response headers minus hop-by-hop ones; repeated headers (Set-Cookie) stay repeated."""
    upstream = list(upstream)
    drop = _connection_tokens(upstream)
    return [(name, value) for name, value in upstream if name.lower() not in drop]


def upstream_error(exc: UpstreamError, service: str) -> GatewayError:
    """Map an upstream failure to the gateway's 502 (unreachable, broken) or 504 (too slow)."""
    if isinstance(exc, (ReadTimeout, ConnectTimeout)):
        return GatewayError(504, "upstream_timeout", f"The {service} service did not answer in time.")
    return GatewayError(502, "upstream_unavailable", f"The {service} service could not be reached.")


def replayable(method: str, headers: Iterable[tuple[str, str]]) -> bool:
    """Whether running the request twice is harmless, so it may be resent when a pooled connection
    turns out closed before any answer: an idempotent method (RFC 9110 §9.2.2), or a request carrying
    an Idempotency-Key, which the services deduplicate (a second copy is replayed or answered 409)."""
    return method in IDEMPOTENT_METHODS or any(name.lower() == "idempotency-key" for name, _ in headers)


class Upstream:
    """An upstream response handed to the WSGI server as the body iterable.

    The server calls `close()` however the response ends (fully sent, client gone, HEAD), which is
    where the pooled connection is returned, or closed when a body was left half-read and the
    connection can no longer carry another request.
    """

    def __init__(self, instance: str, response: Response):
        self.instance = instance  # the base URL that answered (logged; the query may hold secrets)
        self.status = response.status
        self.headers = response.headers  # (name, value) pairs, repeats and case kept
        self._response = response
        self._log_context = contextvars.copy_context()  # carries the request id past the request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._response
        except UpstreamError as exc:
            # Re-raised so the server aborts the client connection instead of ending a truncated
            # body as if it were complete.
            self._log_context.run(logger.warning, "upstream %s broke off the body: %s", self.instance, exc)
            raise

    def close(self) -> None:
        self._response.close()


class Proxy:
    """Sends requests to a service's instances in round-robin order, failing over on refused connections."""

    def __init__(self, settings: Settings, discovery: Discovery):
        self._discovery = discovery
        self._client = UpstreamClient(
            connect_timeout=settings.gateway_connect_timeout, read_timeout=settings.gateway_read_timeout)
        self._turns: dict[str, int] = {}
        self._lock = threading.Lock()

    def _rotation(self, service: str, instances: list[str]) -> list[str]:
        with self._lock:
            turn = self._turns.get(service, 0)
            self._turns[service] = turn + 1
        start = turn % len(instances)
        return instances[start:] + instances[:start]

    def forward(
        self, service: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Upstream:
        """Send `method target` to one instance of `service`; raises GatewayError (400/502/503/504).

        Only a failure to open the connection moves on to the next instance: at that point nothing
        was sent. Once the request may have been written (reset, read timeout) it is never resent to
        another instance, because a POST could then run twice (the client's one resend on a fresh
        connection to the same instance is limited to requests the upstream cannot have run, or
        `replayable` ones: see gateway.upstream_client).
        """
        instances = self._discovery.instances(service)
        if not instances:
            raise GatewayError(503, "service_unavailable", f"No instance of the {service} service is known.")
        try:
            request = prepare(method, target, headers, body)
        except InvalidRequest as exc:
            raise GatewayError(400, "bad_request", "A request header cannot be forwarded.") from exc
        resendable = replayable(method, headers)
        failure: ConnectFailed | None = None
        # A weighted list repeats instances; failing over, each one is tried once.
        for base in dict.fromkeys(self._rotation(service, instances)):
            try:
                response = self._client.send(origin(base), request, replayable=resendable)
            except ConnectFailed as exc:  # refused, unresolvable, connect timeout: nothing was sent
                logger.warning("cannot connect to %s instance %s: %s", service, base, exc)
                failure = exc
                continue
            except UpstreamError as exc:
                logger.warning("%s instance %s failed: %s", service, base, exc)
                raise upstream_error(exc, service) from exc
            return Upstream(base, response)
        assert failure is not None
        raise upstream_error(failure, service) from failure

    def close(self) -> None:
        """Close every pooled connection and stop discovery's refresher (tests and worker shutdown)."""
        self._client.close()
        close = getattr(self._discovery, "close", None)
        if close is not None:
            close()
