"""CPU seconds per process, read from /proc: who paid for a run, in user+system time.

The system's processes are counted by process group (each supervised child leads one, so gunicorn
and Celery children are included); the shared servers (MariaDB, Redis) by command name; the load generator, our own child, by getrusage.
The shared servers also serve whoever else uses them during a run, so their figures are an upper
bound on a busy machine.
"""
from __future__ import annotations

import os
import resource
from collections.abc import Iterable, Mapping
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
SHARED = {"mariadbd": "mariadb", "mysqld": "mariadb", "redis-server": "redis"}


def _processes() -> Iterable[tuple[int, str, int, float]]:
    """(pid, comm, pgrp, cpu seconds incl. reaped children) of every live process."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        # fields[0] is state (field 3); utime..cstime are fields 14-17.
        ticks = sum(int(value) for value in fields[11:15])
        yield int(stat.parent.name), comm, int(fields[2]), ticks / TICK


def snapshot(groups: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far per named process group (`{name: pgid}`) and per shared server."""
    by_group = {pgid: name for name, pgid in groups.items()}
    totals = {name: 0.0 for name in [*groups, *sorted(set(SHARED.values()))]}
    for _pid, comm, pgrp, seconds in _processes():
        if pgrp in by_group:
            totals[by_group[pgrp]] += seconds
        elif comm in SHARED:
            totals[SHARED[comm]] += seconds
    return totals


def spent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: round(max(0.0, after.get(name, 0.0) - before.get(name, 0.0)), 2) for name in after}


def own() -> float:
    """CPU seconds of this process so far (the workflow driver's clients, the no-op publisher)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def own_children() -> float:
    """CPU seconds of this process's reaped children (wrk, once a run is over)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
