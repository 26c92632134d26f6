"""Run `cfmp` as a real process and read its output: what a parent such as `cfmp up` relies on."""
from __future__ import annotations

import base64
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get_status(url: str) -> int:
    """GET on loopback, never through a proxy named in the environment."""
    with _DIRECT.open(url, timeout=5) as response:
        return response.status


def http(url: str, method: str = "GET", basic_auth: str | None = None,
         timeout: float = 10) -> tuple[int, bytes]:
    """Status and body of one request on loopback, error statuses included (401, 403...)."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if basic_auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(basic_auth.encode()).decode())
    try:
        with _DIRECT.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def group_members(pgids: set[int]) -> list[int]:
    """Live (non-zombie) processes whose process group is one of `pgids`, read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp ...; comm may contain spaces, so split after the last ')'.
            state, _ppid, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
        except OSError:
            continue  # exited while we looked
        if int(pgrp) in pgids and state != "Z":
            found.append(int(stat.parent.name))
    return found


class CliProcess:
    """`python -m common.cli ARGS` (or another module) in a session of its own, stdout lines queued
    as they come."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path, module: str = "common.cli"):
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module, *args], env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.closed = False
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, self.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stderr, self.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, sink: list[str], queued: bool) -> None:
        for line in stream:
            sink.append(line)
            if queued:
                self._lines.put(line)
        if queued:
            self._lines.put(None)

    def transcript(self) -> str:
        return f"--- stdout\n{''.join(self.stdout)[-6000:]}\n--- stderr\n{''.join(self.stderr)[-6000:]}"

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first stdout line (from now on) matching `pattern`; fails with the transcript otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                message = f"no line matching {pattern!r} within {timeout}s\n{self.transcript()}"
                raise AssertionError(message) from None
            if line is None:
                raise AssertionError(f"stdout closed before a line matched {pattern!r}\n{self.transcript()}")
            match = re.search(pattern, line)
            if match:
                return match

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send `sig` to the process (not its group) and return its exit code."""
        self.popen.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> int:
        """The exit code, once the output is read to its end; the group is left as it is, to inspect."""
        code = self.popen.wait(timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def close(self) -> None:
        """Kill whatever is left of the group, reap, and close the pipes (no ResourceWarning)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.wait()
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()
        self.closed = True
