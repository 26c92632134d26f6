"""Figures out: an aligned table on stdout and one small JSON file per run under bench/results/."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).with_name("results")


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def machine() -> dict:
    """What the figures were measured on, including how busy it already was."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "0")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gb": round(int(memory) / 2**20, 1),
            "python": platform.python_version(), "kernel": platform.release(), "commit": commit,
            "load_average_at_start": load_average()}


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def verdict(value: float, limit: float, at_least: bool) -> str:
    ok = value >= limit if at_least else value <= limit
    return f"{value:.2f} ({'≥' if at_least else '≤'} {limit}: {'met' if ok else 'MISSED'})"


def save(name: str, document: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    document = {"benchmark": name, "finished_at": stamp, **document}
    document.setdefault("machine", {})["load_average_at_end"] = load_average()
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path
