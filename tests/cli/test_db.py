"""`cfmp db upgrade|downgrade` drive Alembic for every bind; downgrade asks before dropping tables."""
from __future__ import annotations

import sqlite3


def tables(path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    connection.close()
    return {name for (name,) in rows if not name.startswith("alembic_version")}


def test_upgrade_then_downgrade(spawn_cli, tmp_path):
    database = tmp_path / "var" / "orders.db"

    upgrade = spawn_cli("db", "upgrade")
    assert upgrade.wait() == 0, upgrade.transcript()
    assert "upgraded to head: " in "".join(upgrade.stdout) and "orders (sqlite:///" in "".join(upgrade.stdout)
    assert "orders" in tables(database)

    refused = spawn_cli("db", "downgrade")  # no terminal to say yes: nothing is dropped
    assert refused.wait() == 1
    assert "orders" in tables(database)

    downgrade = spawn_cli("db", "downgrade", "--yes")
    assert downgrade.wait() == 0, downgrade.transcript()
    assert tables(database) == set()
