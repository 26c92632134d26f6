"""The Redis broker transport, with one redis-py client per kombu channel.

kombu's Redis channel builds a new `redis.Redis` for every publish, publish batch, queue-size
check and binding lookup (`Channel.conn_or_acquire`). A client's constructor fills a table of
~170 response callbacks: py-spy found it the largest single cost in the worker pools, 4–10% of
their samples (`bench.scaling`), ahead of anything in our tasks. A client is a thin, thread-safe
handle on the channel's connection pool, so one per channel (and per pool, should kombu replace
its pool after a connection error) sends the same commands over the same pooled connections.

`install()` makes `redis://` and `rediss://` broker URLs use this transport; `celeryconfig`
calls it, so every app built from it (services, pools, beat, Flower, the benchmark's no-op
workers) does.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

SCHEMES = ("redis", "rediss")


class Channel(kombu_redis.Channel):
    _shared: tuple | None = None  # (the connection pool, the client over it)

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        pool, shared = self._shared or (None, None)
        if pool is not self.pool:
            shared = self._create_client()
            self._shared = (self.pool, shared)
        yield shared


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    for scheme in SCHEMES:
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"


@functools.lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    """A plain client on the broker's Redis for the system's own keys (markers, queue lengths), one
    per URL and process: a thin handle on its own small connection pool; short timeouts."""
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
