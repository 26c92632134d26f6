"""The four worker pools as data: which queue each consumes, how it runs, what it registers as.

One pool per queue (reference §2.5): a slow task in one domain never waits behind, or holds a
prefetched slot in front of, another domain's work, and each pool gets the execution model its
tasks need. `cfmp worker POOL` and `cfmp up` build their command lines from here, so the queue, the
node name (`<pool>@<host>`, what Flower lists and `celery inspect ping` answers to) and the defaults
are written once. Queue names are `celeryconfig.QUEUES`; a test keeps the two in step.
"""
from __future__ import annotations

from dataclasses import dataclass

POOL_TYPES = ("prefork", "threads", "solo")


@dataclass(frozen=True)
class Pool:
    name: str
    queues: tuple[str, ...]
    service: str  # the Nacos service name (DESIGN.md §3)
    pool_type: str
    concurrency: int

    @property
    def node_name(self) -> str:
        """Celery's node name pattern; `%h` becomes the host name when the worker starts."""
        return f"{self.name}@%h"


POOLS: dict[str, Pool] = {pool.name: pool for pool in (
    # Short, DB-bound state changes (mark paid, outbox relay, sweeps): prefork, one process per core
    # of the 2-core reference machine; processes sidestep the GIL and a crash kills one child only.
    Pool("orders", ("orders",), "OrderWorkerPool", "prefork", 2),
    Pool("payments", ("payments",), "PaymentWorkerPool", "prefork", 2),
    # CPU-bound rule scoring: prefork, never more processes than cores (more would only queue on them).
    Pool("risk", ("risk",), "RiskWorkerPool", "prefork", 2),
    # I/O-bound delivery (SMTP, webhooks) mostly waits on the network: threads are cheap to have many
    # of, so slow receivers do not hold up the rest.
    Pool("notifications", ("notifications",), "NotificationWorkerPool", "threads", 8),
)}


def worker_argv(pool: Pool, concurrency: int | None = None, pool_type: str | None = None,
                loglevel: str = "INFO") -> list[str]:
    """`celery` arguments for one pool's worker, defaults overridable per start.

    Task events stay on (`-E`) because Flower only knows what it sees as events. Mingle and gossip
    are off: with one worker per pool there is nothing to synchronise, and they slow start-up and
    chatter on the broker; heartbeats stay on, Flower uses them to tell a worker is online.
    """
    if pool_type is not None and pool_type not in POOL_TYPES:
        raise ValueError(f"pool type must be one of {', '.join(POOL_TYPES)}, got {pool_type!r}")
    return [
        "worker", "--queues", ",".join(pool.queues), "--hostname", pool.node_name,
        "--pool", pool_type or pool.pool_type, "--concurrency", str(concurrency or pool.concurrency),
        "--task-events", "--without-mingle", "--without-gossip", "--loglevel", loglevel,
    ]
