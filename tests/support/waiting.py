"""Waiting for asynchronous outcomes with a deadline, instead of sleeping and hoping."""
from __future__ import annotations

import time


def wait_for(probe, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    """Call `probe()` until it returns something truthy; return that, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def stays(probe, duration: float = 1.0, interval: float = 0.05):
    """Assert `probe()` stays truthy for `duration` (e.g. "still exactly one row")."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        value = probe()
        assert value, f"condition stopped holding: {value!r}"
        time.sleep(interval)
