"""A small process supervisor: start children, merge their output, wait until ready, stop them all.

`cfmp up` describes each process as data (`ChildSpec`: name, argv, readiness check), so adding a
worker pool, beat or Flower is one more entry. Each child runs in a session of its own: a Ctrl-C on
the terminal reaches only the supervisor, which then stops the children in order, and the final
SIGKILL goes to the child's whole process group, so no gunicorn or Celery grandchild outlives it.
"""
from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from common.serve import LISTENING_PREFIX

ANNOUNCE_RE = re.compile(rf"^{re.escape(LISTENING_PREFIX)}(\S+)$")

ReadyCheck = Callable[["Child"], bool]
# Loopback checks must not go through a proxy a developer's environment may name.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ChildExited(RuntimeError):
    """A child stopped while it should be running; the system is incomplete, so everything stops."""

    def __init__(self, child: Child):
        super().__init__(f"{child.name} exited unexpectedly with code {child.process.returncode}")
        self.child = child


class NotReady(RuntimeError):
    """Some children never passed their readiness check in time; the message names them."""


def http_ready(path: str) -> ReadyCheck:
    """Ready once GET <announced address><path> answers 200 (the address the child printed)."""

    def check(child: Child) -> bool:
        if child.url is None:
            return False
        try:
            with _DIRECT.open(child.url + path, timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError as error:  # answered, but not 2xx: not ready yet
            error.close()
            return False
        except (OSError, http.client.HTTPException):  # refused, reset, timed out
            return False

    return check


def running(child: Child) -> bool:
    """For processes with nothing to ask (beat): ready once started and still alive."""
    return child.alive


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ChildSpec:
    """One process of the system: its name (the output prefix), its command line, how to tell it is
    ready, and environment variables for it alone on top of the shared ones."""

    name: str
    argv: Sequence[str]
    ready: ReadyCheck
    env: Mapping[str, str] = field(default_factory=dict)


class Output:
    """The merged stream: whole lines, each prefixed with its process's name, never interleaved."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        with self.lock:
            self.stream.write(f"[{name}] {text.rstrip()}\n")
            self.stream.flush()

    def block(self, lines: Iterable[str]) -> None:
        with self.lock:
            self.stream.write("".join(f"{line}\n" for line in lines))
            self.stream.flush()


class Child:
    def __init__(self, spec: ChildSpec, output: Output, base_env: Mapping[str, str]):
        self.spec = spec
        self.name = spec.name
        self.url: str | None = None
        self.ready = False
        self.process = subprocess.Popen(
            list(spec.argv), env={**base_env, **spec.env}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=True,
        )
        self.pump = threading.Thread(target=self._pump, args=(output,), name=f"pump-{self.name}", daemon=True)
        self.pump.start()

    def _pump(self, output: Output) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            match = ANNOUNCE_RE.match(line.strip())
            if match and self.url is None:
                self.url = match.group(1)
            output.line(self.name, line)

    @property
    def alive(self) -> bool:
        """Whether the leader still runs, asked without reaping it (see `reap`)."""
        if self.process.returncode is not None:
            return False
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self.process.pid, flags) is None

    def reap(self) -> int:
        """SIGKILL what is left of the child's process group, then collect the leader's exit code.

        In that order: until the leader is reaped its pid, which is the group id, cannot be reused,
        so the SIGKILL reaches only the child's own leftovers (say a wedged gunicorn worker).
        """
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        code = self.process.wait()
        deadline = time.monotonic() + 2  # a SIGKILLed grandchild takes a moment to be gone
        while time.monotonic() < deadline and group_exists(self.process.pid):
            time.sleep(0.02)
        self.pump.join(timeout=2)  # its last words (a traceback, say) reach the stream first
        if not self.pump.is_alive() and self.process.stdout is not None:
            self.process.stdout.close()
        return code


class Supervisor:
    def __init__(self, specs: Sequence[ChildSpec], output: Output, stop_timeout: float = 10.0):
        self.specs = specs
        self.output = output
        self.stop_timeout = stop_timeout
        self.children: list[Child] = []

    def say(self, message: str) -> None:
        self.output.line("up", message)

    def start(self, base_env: Mapping[str, str]) -> None:
        for spec in self.specs:
            child = Child(spec, self.output, base_env)
            self.children.append(child)
            self.say(f"started {child.name} (pid {child.process.pid})")

    def _check_alive(self) -> None:
        for child in self.children:
            if not child.alive:
                child.reap()
                raise ChildExited(child)

    def wait_ready(self, timeout: float, poll: float = 0.2, progress_every: float = 10.0) -> None:
        """Block until every child's check passes; ChildExited or NotReady otherwise."""
        started = time.monotonic()
        next_progress = started + progress_every
        while True:
            self._check_alive()
            for child in self.children:
                if not child.ready and child.spec.ready(child):
                    child.ready = True
                    where = f" at {child.url}" if child.url else ""
                    self.say(f"{child.name} ready{where} ({time.monotonic() - started:.1f}s)")
            waiting = [child.name for child in self.children if not child.ready]
            if not waiting:
                return
            now = time.monotonic()
            if now - started > timeout:
                raise NotReady(f"not ready after {timeout:.0f}s: {', '.join(waiting)}")
            if now >= next_progress:
                self.say(f"waiting for {', '.join(waiting)}")
                next_progress = now + progress_every
            time.sleep(poll)

    def watch(self, poll: float = 0.2) -> None:
        """Block while every child runs; raises ChildExited for the first one that stops."""
        while True:
            self._check_alive()
            time.sleep(poll)

    def stop(self) -> None:
        """SIGTERM each leader (it stops its own workers), then SIGKILL every group after the timeout."""
        for child in reversed(self.children):
            if child.alive:
                child.process.terminate()
        deadline = time.monotonic() + self.stop_timeout
        while any(child.alive for child in self.children) and time.monotonic() < deadline:
            time.sleep(0.05)
        for child in self.children:
            if child.alive:
                self.say(f"{child.name} did not stop within {self.stop_timeout:.0f}s; killing it")
            child.reap()
