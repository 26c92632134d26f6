"""The system under test as real processes: `cfmp serve`, `cfmp gateway`, `cfmp worker`, `cfmp beat`.

Built on the supervisor `cfmp up` uses (`common.cli.supervisor`): each child in a session of its
own, readiness by HTTP (`/ready`) or Celery ping, and a stop that SIGKILLs whatever is left of each
process group. The children's merged output goes to a log file, not the terminal, so the bench's
progress lines stay readable; the file is named when a child fails.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from common.cli.liveness import PingReadiness
from common.cli.supervisor import Child, ChildSpec, Output, Supervisor, http_ready
from common.localredis import free_port
from common.serve import DEFAULT_THREADS, DEFAULT_WORKERS
from common.settings import Settings

from bench.scratch import Scratch

HOST = "127.0.0.1"
CLI = (sys.executable, "-m", "common.cli")
ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into the same unwinding as Ctrl-C."""


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C; during the cleanup that follows, neither cuts it short."""
    def raise_interrupt(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def shielded() -> Iterator[None]:
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class System:
    """Ports, environment and children of one run; `stop()` is safe to call at any point."""

    def __init__(self, scratch: Scratch, log_level: str = "INFO", extra_env: Mapping[str, str] | None = None):
        self.scratch = scratch
        directory = Path(scratch.directory or scratch.make_directory())
        self.log_path = directory / "processes.log"
        self.log = self.log_path.open("w")
        self.ports = {name: free_port(HOST) for name in ("orders", "payments", "notifications", "gateway")}
        self.env = {
            **os.environ, "PYTHONUNBUFFERED": "1", "ENV": "test", "LOG_LEVEL": log_level,
            "LOG_DIR": str(directory / "logs"), "VAR_DIR": str(directory / "var"),
            "CELERY_BROKER_URL": f"{scratch.redis_url}/0", "CELERY_RESULT_BACKEND": f"{scratch.redis_url}/1",
            "CELERY_KEY_PREFIX": scratch.key_prefix, "PYTHONPATH": str(ROOT),
            **{f"{name.upper()}_PORT": str(port) for name, port in self.ports.items()},
            **scratch.service_env(), **(extra_env or {}),
        }
        self.env.pop("NACOS_SERVER", None)
        self.settings = Settings.from_env(self.env, dotenv_path=None)
        self.pings = PingReadiness(self.settings)
        self.supervisors: list[Supervisor] = []

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.ports[name]}"

    # --- child specs -----------------------------------------------------------------------------
    def service(self, name: str, workers: int = DEFAULT_WORKERS, threads: int = DEFAULT_THREADS) -> ChildSpec:
        argv = (*CLI, "serve", name, "--host", HOST, "--port", str(self.ports[name]),
                "--workers", str(workers), "--threads", str(threads))
        return ChildSpec(name, argv, http_ready("/ready"))

    def gateway(self, workers: int = DEFAULT_WORKERS, threads: int = DEFAULT_THREADS) -> ChildSpec:
        argv = (*CLI, "gateway", "--host", HOST, "--port", str(self.ports["gateway"]),
                "--workers", str(workers), "--threads", str(threads))
        return ChildSpec("gateway", argv, http_ready("/health"))

    def worker(self, pool: str, concurrency: int | None = None, pool_type: str | None = None,
               node: str | None = None) -> ChildSpec:
        """`cfmp worker POOL`; with `node`, Celery's CLI directly under that node name (a second
        process of one pool needs a name of its own)."""
        from workers.pools import POOLS, worker_argv

        options = (*(("-c", str(concurrency)) if concurrency else ()), *(("--pool", pool_type) if pool_type else ()))
        if node is None:
            return ChildSpec(f"worker-{pool}", (*CLI, "worker", pool, *options), self.pings.ready(POOLS[pool].node_name))
        argv = worker_argv(POOLS[pool], concurrency, pool_type)
        argv[argv.index("--hostname") + 1] = node
        return ChildSpec(f"worker-{node.split('@')[0]}", (sys.executable, "-m", "celery", "-A", "workers.celery", *argv),
                         self.pings.ready(node), env={"CFMP_PROCESS": f"worker-{pool}"})

    def beat(self) -> ChildSpec:
        from common.cli.worker import BEAT_NODE

        return ChildSpec("beat", (*CLI, "beat"), self.pings.ready(BEAT_NODE))

    def custom(self, name: str, argv: Sequence[str], ready_path: str | None = None, node: str | None = None) -> ChildSpec:
        ready = http_ready(ready_path) if ready_path else self.pings.ready(node or f"{name}@%h")
        return ChildSpec(name, tuple(argv), ready)

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self, specs: Sequence[ChildSpec], timeout: float = 120.0) -> Supervisor:
        """Start `specs` and wait until each is ready; returns their supervisor (one per call)."""
        names = ", ".join(spec.name for spec in specs)
        say(f"starting {names} (output in {self.log_path})")
        supervisor = Supervisor(specs, Output(self.log), stop_timeout=15)
        self.supervisors.append(supervisor)
        started = time.monotonic()
        supervisor.start(self.env)
        supervisor.wait_ready(timeout, progress_every=1e9)
        say(f"ready in {time.monotonic() - started:.1f}s: {names}")
        return supervisor

    def children(self) -> list[Child]:
        return [child for supervisor in self.supervisors for child in supervisor.children]

    def stop(self, supervisor: Supervisor | None = None) -> None:
        for item in ([supervisor] if supervisor else list(reversed(self.supervisors))):
            item.stop()
            if item in self.supervisors:
                self.supervisors.remove(item)
        if supervisor is None:
            self.pings.stop()
            self.log.close()

    def migrate(self) -> None:
        """`cfmp db upgrade` against the run's databases, as a process of its own."""
        import subprocess

        say("applying migrations")
        subprocess.run([*CLI, "db", "upgrade"], env=self.env, check=True, stdout=self.log, stderr=subprocess.STDOUT)
