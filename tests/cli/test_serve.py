"""`cfmp gateway|serve --port 0` binds a free port, says which, serves, and stops cleanly on SIGTERM."""
from __future__ import annotations

import pytest

from .procs import get_status, group_members


@pytest.mark.parametrize(
    "args",
    [
        ["gateway", "--port", "0"],
        ["gateway", "--port", "0", "--dev"],
        ["serve", "orders", "--port", "0", "--workers", "1"],
    ],
    ids=["gateway-gunicorn", "gateway-dev", "orders-gunicorn"],
)
def test_port_zero_is_announced_served_and_stopped(spawn_cli, args):
    process = spawn_cli(*args)

    url = process.wait_for_line(r"^listening on (http://127\.0\.0\.1:(\d+))$", timeout=60)
    assert int(url.group(2)) != 0
    assert get_status(f"{url.group(1)}/health") == 200
    assert process.stop() == 0, process.transcript()
    assert group_members({process.popen.pid}) == []
    assert "Traceback" not in "".join(process.stderr)


def test_the_bound_address_is_logged_too(spawn_cli, tmp_path):
    process = spawn_cli("gateway", "--port", "0")
    url = process.wait_for_line(r"^listening on (http://\S+)$", timeout=60).group(1)
    process.stop()

    assert f"gateway listening on {url}" in (tmp_path / "logs" / "gateway.log").read_text()
