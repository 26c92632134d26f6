"""wrk, the load generator: installed from Debian when missing, driven by `request.lua`.

wrk runs as its own process (C, event loop, keep-alive connections), so the load it offers does not
depend on the benchmark's Python. Its Lua `done()` hook writes the summary as JSON: requests,
errors by kind (`status` counts every answer that is not 2xx/3xx) and latency percentiles.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("request.lua")


class LoadGeneratorMissing(RuntimeError):
    pass


def ensure_wrk() -> str:
    """The path of `wrk`, installing Debian's package first when it is missing (as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise LoadGeneratorMissing("wrk is not installed: apt-get install wrk (or run as root on Debian)")
    print("[bench] installing wrk (apt-get install wrk)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or "wrk"


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_kinds: dict

    def as_dict(self) -> dict:
        return asdict(self)


def run(url: str, connections: int, seconds: float, method: str = "GET", body: bytes | None = None,
        token: str | None = None, threads: int = 2, timeout: float = 10.0) -> Result:
    """Offer `connections` concurrent keep-alive clients for `seconds` against one URL."""
    with tempfile.TemporaryDirectory(prefix="cfmp-wrk-") as scratch:
        out = Path(scratch) / "summary.json"
        env = {**os.environ, "BENCH_METHOD": method, "BENCH_TOKEN": token or "", "BENCH_OUT": str(out),
               "BENCH_BODY_FILE": ""}
        if body is not None:
            (Path(scratch) / "body.json").write_bytes(body)
            env["BENCH_BODY_FILE"] = str(Path(scratch) / "body.json")
        argv = [ensure_wrk(), "-t", str(max(1, min(threads, connections))), "-c", str(connections),
                "-d", f"{seconds:g}s", "--timeout", f"{timeout:g}s", "-s", str(SCRIPT), url]
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        summary = json.loads(out.read_text())
    duration = summary["duration_us"] / 1e6
    latency = summary["latency_us"]
    errors = summary["errors"]
    return Result(
        requests=summary["requests"], seconds=round(duration, 2), rps=round(summary["requests"] / duration, 1),
        p50_ms=latency["p50"] / 1000, p95_ms=latency["p95"] / 1000, p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000, errors=sum(errors.values()), error_kinds=errors,
    )
