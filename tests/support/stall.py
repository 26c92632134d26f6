"""A remote-control command that wedges a worker's consumer, for the liveness tests: a worker
process imports it with `-I tests.support.stall`.

Control commands run inside the consumer's event loop, so while this one waits the worker reads no
message (task or control) although its process, its threads and its broker connection live on:
what a consumer that silently stopped consuming looks like from outside (reference §2.7). It
returns once the file named by `release` exists (or after `limit` seconds).
"""
from __future__ import annotations

import os
import time

from celery.worker.control import control_command


@control_command(args=[("release", str), ("limit", float)], signature="<release file> [limit]")
def testing_stall(state, release: str, limit: float = 60.0) -> dict:
    deadline = time.monotonic() + limit
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"ok": "released"}
