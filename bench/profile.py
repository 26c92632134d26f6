"""Sampling profiles with py-spy (`pip install py-spy` into the venv; `make bench` does).

`Profiler(pid)` records a process and its children (gunicorn's or Celery's workers) while a load
runs, as collapsed stacks, sampling only threads that hold the GIL (`--gil`): Python CPU time, not
waits on sockets. `hot(...)` answers "where does the CPU go" twice: per function of ours, the share
of samples it was on the stack for (inclusive), and per function anywhere, the share it was the
innermost frame (self time).
"""
from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path


def available() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, pid: int, out: Path, rate: int = 200):
        self.out = out
        self.process = subprocess.Popen(
            [available() or "py-spy", "record", "--pid", str(pid), "--subprocesses", "--format", "raw", "--gil",
             "--rate", str(rate), "--nonblocking", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        """SIGINT makes py-spy write what it sampled so far."""
        import signal

        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


OURS = ("api/", "gateway/", "common/", "models/", "tasks/", "workers/", "bench/")


def hot(collapsed: Path, top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """{"ours": [(function, inclusive share)], "self": [(function, self share)]}, largest first."""
    inclusive: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_name(frame) for frame in stack.split(";")[1:]]  # the first names the process
        if not frames or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        leaves[frames[-1]] += samples
        for frame in set(frames):
            if frame.startswith(OURS):
                inclusive[frame] += samples
    if not total:
        return {"ours": [], "self": []}
    return {"ours": [(name, round(n / total, 3)) for name, n in inclusive.most_common(top)],
            "self": [(name, round(n / total, 3)) for name, n in leaves.most_common(top)]}


def _name(frame: str) -> str:
    """`handle (gunicorn/workers/gthread.py:123)` → `gunicorn/workers/gthread.py:handle`."""
    function, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{function}"
