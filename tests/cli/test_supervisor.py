"""The supervisor behind `cfmp up`, driven with tiny Python children instead of the real services."""
from __future__ import annotations

import io
import re
import sys
import textwrap
import time

import pytest

from common.cli.supervisor import ChildExited, ChildSpec, NotReady, Output, Supervisor, http_ready, running

from .procs import group_members

# Serves 200 on every GET from a free port and announces it the way `cfmp serve` does.
HTTP_CHILD = textwrap.dedent("""
    import http.server
    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/ready" else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    print("listening on http://127.0.0.1:%d" % server.server_port, flush=True)
    server.serve_forever()
""")
# Ignores SIGTERM and leaves a grandchild behind that ignores it too: only SIGKILL to the group works.
STUBBORN_CHILD = textwrap.dedent("""
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    subprocess.Popen([sys.executable, "-c", grandchild])
    print("stubborn started", flush=True)
    time.sleep(600)
""")


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def supervise(stream):
    supervisors: list[Supervisor] = []

    def make(*specs: ChildSpec, stop_timeout: float = 5.0) -> Supervisor:
        supervisor = Supervisor(specs, Output(stream), stop_timeout=stop_timeout)
        supervisors.append(supervisor)
        supervisor.start({"PATH": "/usr/bin:/bin"})
        return supervisor

    yield make
    for supervisor in supervisors:
        supervisor.stop()


def test_output_is_prefixed_and_http_readiness_uses_the_announced_address(supervise, stream):
    supervisor = supervise(
        ChildSpec("web", python(HTTP_CHILD), http_ready("/ready")),
        ChildSpec("talker", python("import time; print('hello', flush=True); time.sleep(60)"), running),
    )

    supervisor.wait_ready(timeout=20)

    web = supervisor.children[0]
    assert web.url is not None and re.fullmatch(r"http://127\.0\.0\.1:\d+", web.url)
    text = stream.getvalue()
    assert f"[web] listening on {web.url}\n" in text
    assert f"[up] web ready at {web.url}" in text
    assert re.search(r"^\[up\] started talker \(pid \d+\)$", text, re.M)
    supervisor.stop()
    assert "[talker] hello\n" in stream.getvalue()


def test_a_check_that_never_passes_times_out_naming_the_child(supervise):
    supervisor = supervise(ChildSpec("web", python(HTTP_CHILD), http_ready("/never")))

    with pytest.raises(NotReady, match=r"not ready after 1s: web"):
        supervisor.wait_ready(timeout=1)


def test_a_child_dying_while_starting_is_reported_with_its_code(supervise, stream):
    crash = python("import sys; print('boom', flush=True); sys.exit(3)")
    supervisor = supervise(ChildSpec("crash", crash, http_ready("/ready")))

    with pytest.raises(ChildExited, match="crash exited unexpectedly with code 3"):
        supervisor.wait_ready(timeout=10)
    assert "[crash] boom\n" in stream.getvalue()


def test_a_child_dying_later_ends_the_watch(supervise):
    supervisor = supervise(ChildSpec("short", python("import time; time.sleep(1)"), running))
    supervisor.wait_ready(timeout=10)

    with pytest.raises(ChildExited, match="short exited unexpectedly with code 0"):
        supervisor.watch()


def test_stop_kills_a_stubborn_child_and_its_grandchildren(supervise, stream):
    supervisor = supervise(ChildSpec("stubborn", python(STUBBORN_CHILD), running), stop_timeout=1)
    pid = supervisor.children[0].process.pid
    deadline = time.monotonic() + 10
    while "stubborn started" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members({pid})) == 2
    started = time.monotonic()

    supervisor.stop()

    assert time.monotonic() - started < 5
    assert group_members({pid}) == []
    assert "[up] stubborn did not stop within 1s; killing it" in stream.getvalue()


def test_stop_ends_well_behaved_children_with_sigterm(supervise):
    supervisor = supervise(ChildSpec("web", python(HTTP_CHILD), http_ready("/ready")))
    supervisor.wait_ready(timeout=20)

    supervisor.stop()

    assert supervisor.children[0].process.returncode == -15
