"""What the broker still remembers: whether Redis lost messages since the outbox relay last looked.

The outbox guarantees that an event is published; a Redis that restarts keeps only what it had
written to disk (with AOF or RDB, everything up to some moment; without persistence, nothing), so
events still queued for their consumers can vanish with it. Payments recover from that by their
sweeps; a lost `order.*` event would leave its notifications unsent for good.

So every relay run leaves a marker in the broker's Redis: the server's `run_id` (new at each start
of the server, different on a promoted replica) and the time. A restored Redis holds every command
up to some point, in order; a marker it still holds therefore vouches for every message published
before it. When the relay finds its marker under another run id, the server restarted and may
have lost what was published after the marker's time; with no marker at all, nothing is vouched
for and the relay looks back `OUTBOX_REPLAY_WINDOW` seconds. `replay_from` answers from when to
publish again (or None), and `remember` writes the marker once that is done.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from common.broker import redis_client
from common.settings import Settings
from models.base import utcnow

log = logging.getLogger(__name__)
# A marker vouches for messages published before it; an event committed before the marker may be
# published a moment after it (its request publishes after the commit). Going back this much
# further covers that and any clock difference between hosts.
MARGIN = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class Check:
    key: str
    run_id: str  # the server's, now
    since: dt.datetime | None  # publish again what was created from then on; None: nothing was lost
    reason: str


def marker_key(settings: Settings, table: str) -> str:
    return f"{settings.celery_key_prefix}cfmp:outbox-relay:{table}"


def replay_from(settings: Settings, table: str, now: dt.datetime | None = None) -> Check:
    """Compare the relay's marker with the server; raises `redis.RedisError` when Redis is away."""
    now = now or utcnow()
    client, key = redis_client(settings.broker_url), marker_key(settings, table)
    run_id = client.info("server")["run_id"]
    raw = client.get(key)
    window = dt.timedelta(seconds=settings.outbox_replay_window)
    if raw is None:
        return Check(key, run_id, now - window, "no relay marker in the broker (first start, or its data is gone)")
    marked_run, _, marked_at = raw.decode().partition(" ")
    if marked_run == run_id:
        return Check(key, run_id, None, "the broker kept running")
    try:
        since = dt.datetime.fromisoformat(marked_at) - MARGIN
    except ValueError:
        since = now - window
    return Check(key, run_id, max(since, now - window),
                 f"the broker restarted (run id {marked_run[:8]}… → {run_id[:8]}…) since the marker of {marked_at}")


def remember(settings: Settings, check: Check, now: dt.datetime | None = None) -> None:
    """Vouch for everything published so far on this server run."""
    redis_client(settings.broker_url).set(check.key, f"{check.run_id} {(now or utcnow()).isoformat()}")
