"""Forwarding to upstream instances over one shared, thread-safe urllib3 pool.

One `PoolManager` per gateway process keeps keep-alive connections to each upstream, so a request
does not pay a TCP handshake. Retries are off at the urllib3 level because the only safe retry (the
next instance, when a connection could not even be opened) is decided here, where the rule "never
resend a request that may have reached an upstream" can be kept.
"""
from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from common.http import REQUEST_ID_HEADER
from common.settings import Settings
from gateway.auth import is_identity_header
from gateway.discovery import Discovery

logger = logging.getLogger("gateway")

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded in either direction.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
     "transfer-encoding", "upgrade"}
)
# Recomputed by the gateway rather than copied: the host is the upstream's, the body is re-framed
# from the buffered bytes, and `Expect` was already answered by the server in front of the gateway.
_REQUEST_ONLY = frozenset({"host", "content-length", "expect", "x-forwarded-host", "x-forwarded-proto"})
POOL_MAXSIZE = 32  # idle connections kept per instance; more are opened (not waited for) under load
NUM_POOLS = 64  # instances whose pools are kept; the least recently used beyond that are closed
CHUNK_SIZE = 64 * 1024


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
) -> urllib3.HTTPHeaderDict:
    """The client's headers as the upstream should see them.

    Every client `X-User-*` header is dropped before the gateway's own identity headers are added, so a
    client can never smuggle an identity past the gateway, whatever the case of the name.
    """
    incoming = list(incoming)
    drop = _connection_tokens(incoming) | _REQUEST_ONLY
    headers = urllib3.HTTPHeaderDict()
    forwarded_for = []
    for name, value in incoming:
        lowered = name.lower()
        if lowered == "x-forwarded-for":
            forwarded_for.append(value)
        elif lowered not in drop and lowered != REQUEST_ID_HEADER.lower() and not is_identity_header(name):
            headers.add(name, value)
    if client_addr:
        forwarded_for.append(client_addr)
    if forwarded_for:
        headers["X-Forwarded-For"] = ", ".join(forwarded_for)
    headers["X-Forwarded-Host"] = host
    headers["X-Forwarded-Proto"] = scheme
    headers[REQUEST_ID_HEADER] = request_id
    headers.update(identity)
    return headers


def client_response_headers(upstream: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's response headers minus hop-by-hop ones; repeated headers (Set-Cookie) stay repeated."""
    upstream = list(upstream)
    drop = _connection_tokens(upstream)
    return [(name, value) for name, value in upstream if name.lower() not in drop]


def upstream_error(exc: HTTPError, service: str) -> GatewayError:
    """Map a urllib3 failure to the gateway's 502 (unreachable) or 504 (too slow)."""
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)) and not isinstance(exc, NewConnectionError):
        return GatewayError(504, "upstream_timeout", f"The {service} service did not answer in time.")
    return GatewayError(502, "upstream_unavailable", f"The {service} service could not be reached.")


class Upstream:
    """An upstream response handed to the WSGI server as the body iterable.

    The server calls `close()` however the response ends (fully sent, client gone, HEAD), which is
    where the pooled connection is returned, or closed when a body was left half-read and the
    connection can no longer carry another request.
    """

    def __init__(self, instance: str, method: str, response: urllib3.BaseHTTPResponse):
        self.instance = instance  # the base URL that answered (logged; the query may hold secrets)
        self.response = response
        self._bodyless = method == "HEAD" or response.status in (204, 304) or response.status < 200
        self._complete = False
        self._log_context = contextvars.copy_context()  # carries the request id past the request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.response.stream(CHUNK_SIZE, decode_content=False)
        except HTTPError as exc:
            # Re-raised so the server aborts the client connection instead of ending a truncated
            # body as if it were complete.
            self._log_context.run(logger.warning, "upstream %s broke off the body: %s", self.instance, exc)
            raise
        self._complete = True

    def close(self) -> None:
        if self._complete or self._bodyless:
            self.response.drain_conn()
        else:
            self.response.close()
        self.response.release_conn()


class Proxy:
    """Sends requests to a service's instances in round-robin order, failing over on refused connections."""

    def __init__(self, settings: Settings, discovery: Discovery):
        self._discovery = discovery
        self._timeout = urllib3.Timeout(
            connect=settings.gateway_connect_timeout, read=settings.gateway_read_timeout
        )
        self._pool = urllib3.PoolManager(
            num_pools=NUM_POOLS, maxsize=POOL_MAXSIZE, block=False, retries=False, timeout=self._timeout
        )
        self._turns: dict[str, int] = {}
        self._lock = threading.Lock()

    def _rotation(self, service: str, instances: list[str]) -> list[str]:
        with self._lock:
            turn = self._turns.get(service, 0)
            self._turns[service] = turn + 1
        start = turn % len(instances)
        return instances[start:] + instances[:start]

    def forward(
        self, service: str, method: str, target: str, headers: urllib3.HTTPHeaderDict, body: bytes
    ) -> Upstream:
        """Send `method target` to one instance of `service`; raises GatewayError (502/503/504).

        Only a failure to open the connection moves on to the next instance: at that point nothing
        was sent. Once the request may have been written (reset, read timeout) it is never resent,
        because a POST could then run twice.
        """
        instances = self._discovery.instances(service)
        if not instances:
            raise GatewayError(503, "service_unavailable", f"No instance of the {service} service is known.")
        failure: HTTPError | None = None
        # A weighted list repeats instances; failing over, each one is tried once.
        for base in dict.fromkeys(self._rotation(service, instances)):
            try:
                response = self._pool.urlopen(
                    method, base + target, body=body or None, headers=headers, redirect=False, retries=False,
                    preload_content=False, decode_content=False, timeout=self._timeout,
                )
            except ConnectTimeoutError as exc:  # includes NewConnectionError (refused, DNS)
                logger.warning("cannot connect to %s instance %s: %s", service, base, exc)
                failure = exc
                continue
            except HTTPError as exc:
                logger.warning("%s instance %s failed: %s", service, base, exc)
                raise upstream_error(exc, service) from exc
            return Upstream(base, method, response)
        assert failure is not None
        raise upstream_error(failure, service) from failure

    def close(self) -> None:
        """Close every pooled connection and stop discovery's refresher (tests and worker shutdown)."""
        self._pool.clear()
        close = getattr(self._discovery, "close", None)
        if close is not None:
            close()
