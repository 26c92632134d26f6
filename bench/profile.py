"""Sampling profiles with py-spy (`pip install py-spy` into the venv; `make bench` does).

`Profiler(pid)` records a process and its children (gunicorn's or Celery's workers) while a load
runs, as collapsed stacks, sampling only threads that hold the GIL (`--gil`): Python CPU time, not
waits on sockets (on a busy machine, also a holder's waits for a core). `hot(...)` answers "where
does the CPU go" three ways: per function of ours, the share of samples it was on the stack for
(inclusive); per function anywhere, the share it was the innermost frame (self time); and per
function of ours, the share it was the innermost of ours (deepest: past the wrappers).
"""
from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
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


KEEP = Path(__file__).resolve().parent.parent / "logs" / "bench"


def keep_path(name: str) -> Path:
    """Where a profile's collapsed stacks stay after the run (`logs/bench/<name>.txt`): they load
    into speedscope or flamegraph.pl as they are."""
    KEEP.mkdir(parents=True, exist_ok=True)
    return KEEP / f"{name}.txt"


OURS = ("api/", "gateway/", "common/", "models/", "tasks/", "workers/", "bench/")
# Entry points (the CLI, the server runner) are on every stack of a process: never where time goes.
ENTRY = ("common/cli/", "common/serve.py")
ROOT = f"{Path(__file__).resolve().parent.parent}/"


def hot(collapsed: Path | Iterable[Path], top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """{"ours": [(function, inclusive share)], "self": [(function, self share)], "deepest": [(function,
    share)]}, largest first; "deepest" gives each sample to the innermost function of ours on its stack
    (its own time and the libraries it called: where our code spends, past the wrappers), or, when
    no code of ours but the entry point is on it, to the library at its leaf (e.g. Celery's own
    per-task work). Several profiles (one pool's processes) count as one."""
    inclusive: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    deepest: collections.Counter[str] = collections.Counter()
    total = 0
    for line in _lines(collapsed):
        stack, _, count = line.rpartition(" ")
        frames = [_name(frame) for frame in stack.split(";")[1:]]  # the first names the process
        if not frames or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        leaves[frames[-1]] += samples
        ours = [frame for frame in frames if frame.startswith(OURS)]
        working = [frame for frame in ours if not frame.startswith(ENTRY)]
        deepest[working[-1] if working else f"{frames[-1].split('/')[0]} (no code of ours below the entry point)"] += samples
        for frame in set(ours):
            inclusive[frame] += samples
    if not total:
        return {"ours": [], "self": [], "deepest": []}
    return {"ours": [(name, round(n / total, 3)) for name, n in inclusive.most_common(top)],
            "self": [(name, round(n / total, 3)) for name, n in leaves.most_common(top)],
            "deepest": [(name, round(n / total, 3)) for name, n in deepest.most_common(top)]}


def samples(collapsed: Path | Iterable[Path]) -> int:
    """How many samples one profile or several hold. With `--gil`, the time threads held the GIL
    times the rate, which counts a holder's waits for a core too: above CPU time on a busy machine."""
    total = 0
    for line in _lines(collapsed):
        count = line.rpartition(" ")[2]
        total += int(count) if count.isdigit() else 0
    return total


def _lines(collapsed: Path | Iterable[Path]) -> Iterator[str]:
    for path in [collapsed] if isinstance(collapsed, Path) else collapsed:
        yield from path.read_text().splitlines()


def print_profiles(found: dict[str, dict], top: int = 10) -> None:
    """`{process: hot(...)}` side by side: our functions, inclusive | any function, self."""
    for process, hot in found.items():
        print(f"\n{process} (py-spy, CPU samples): our functions, inclusive | any function, self")
        ours, own = hot["ours"][:top], hot["self"][:top]
        for i in range(max(len(ours), len(own))):
            left = f"{ours[i][1]:6.1%}  {ours[i][0]}" if i < len(ours) else ""
            right = f"{own[i][1]:6.1%}  {own[i][0]}" if i < len(own) else ""
            print(f"  {left:<70.70} | {right}")


def _name(frame: str) -> str:
    """`handle (gunicorn/workers/gthread.py:123)` → `gunicorn/workers/gthread.py:handle`."""
    function, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if path.startswith(ROOT):
        return f"{path[len(ROOT):]}:{function}"
    for marker in ("site-packages/", "/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{function}"
