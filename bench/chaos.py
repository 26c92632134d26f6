"""Fault injection (issue 7): the workflow load under SIGKILLed workers and a Redis and a MariaDB restart.

    python -m bench.chaos [--seconds 120] [--rate 1] [--clients 6] [--kill-every 5] [--settle 150] [--seed N]
                          [--max-backlog 100]

1. Private servers: a `redis-server` (no persistence) and a `mariadbd` (fresh datadir from
   `mariadb-install-db`) on free loopback ports in a temporary directory, so the restarts below never
   touch the shared Redis on 6379 or MariaDB on 3306. The run's databases and key prefix are made on
   them by `bench.scratch`, the system is `bench.system` (three services, the gateway, one worker per
   pool, beat) pointed at them, with short sweep intervals and a 10 s visibility timeout so work lost
   with a killed worker is redelivered or re-driven within the run.
2. Load for `--seconds` at `--rate` workflows per second: client threads create orders and pay them
   with the sandbox through the gateway; some amounts are declined (`.13`) or lose their callback
   (`.77`, reconciliation); a share of the paid orders is cancelled (full refund), refunded twice at
   once by the seller for more than the capture in total (the database must refuse one), or refunded
   with an amount the provider refuses (`.31`).
   Clients retry a failed POST with the same `Idempotency-Key` and count every error.
   Meanwhile: every few seconds a random worker process (a pool's main process or one of its prefork
   children) is SIGKILLed; a killed main process is restarted (a prefork child is replaced by its
   pool); the private Redis is SIGKILLed and restarted once (it comes back empty: queues, unacked
   messages, chord counters and results are gone) and MariaDB once (crash recovery).
3. Settle: no new load; the databases are polled until nothing is in flight (bounded by `--settle`).
4. Invariants, read straight from the databases (see `check`), a table of counts, a JSON file under
   bench/results/; exit code 1 when an invariant is violated.
Everything (processes, private servers, the temporary directory) is removed at the end, Ctrl-C included.
"""
from __future__ import annotations

import collections
import datetime as dt
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import click
import psutil
import pymysql
import pymysql.cursors
import redis

from bench import report
from bench.driver import _DIRECT, SELLER
from bench.scratch import Scratch
from bench.system import HOST, System, interruptible, say, shielded
from common.cli.supervisor import Output, Supervisor
from common.localredis import free_port
from common.tokens import issue_token

SERVICES = ("orders", "payments", "notifications")
CAPTURED = ("succeeded", "partially_refunded", "refunded")
# Short loops, so what a fault interrupts is re-driven within the run (README "Configuration").
TIMINGS = {
    "BROKER_VISIBILITY_TIMEOUT": 10, "OUTBOX_RELAY_INTERVAL": 2, "ORDER_SWEEP_INTERVAL": 2,
    "PAYMENT_SWEEP_INTERVAL": 2, "PAYMENT_REDRIVE_AFTER": 15, "PAYMENT_RECONCILE_AFTER": 15,
    "ORDER_PAYMENT_TIMEOUT": 60, "PAYMENT_EXPIRY": 80, "NOTIFICATION_RETRY_BASE": 2,
}
# tasks/notifications/actions.py: the watchdog runs every 30 s and steps in 60 s after a delivery was due.
NOTIFICATION_WATCHDOG = 30 + 60
OUTBOX_RELAY_GRACE = 2  # tasks/outbox.py RELAY_GRACE


# --- private servers ------------------------------------------------------------------------------
class Server:
    """One private server process in a session of its own; `kill()` is a crash, `start()` brings it back
    on the same port and data directory."""

    def __init__(self, name: str, directory: Path, port: int, argv: list[str]):
        self.name, self.directory, self.port, self.argv = name, directory, port, argv
        self.process: subprocess.Popen | None = None
        self.log = (directory / f"{name}.log").open("a")

    def start(self, timeout: float = 60) -> None:
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd=self.directory)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"private {self.name} exited with {self.process.returncode}; see {self.log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"private {self.name} not ready after {timeout:.0f}s; see {self.log.name}")
            time.sleep(0.2)

    def ready(self) -> bool:
        raise NotImplementedError

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class PrivateRedis(Server):
    def __init__(self, directory: Path):
        port = free_port(HOST)
        super().__init__("redis", directory, port, [shutil.which("redis-server") or "redis-server", "--port", str(port),
                                               "--bind", HOST, "--save", "", "--appendonly", "no",
                                               "--dir", str(directory)])

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def ready(self) -> bool:
        try:
            return bool(redis.Redis(host=HOST, port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False


class PrivateMariaDB(Server):
    def __init__(self, directory: Path):
        port = free_port(HOST)
        self.data = directory / "mariadb"
        binary = next((p for p in ("/usr/sbin/mariadbd", shutil.which("mariadbd"), "/usr/sbin/mysqld") if p and
                       os.path.exists(p)), "mariadbd")
        super().__init__("mariadb", directory, port, [
            binary, "--no-defaults", f"--datadir={self.data}", f"--port={port}", f"--socket={directory}/mariadb.sock",
            f"--bind-address={HOST}", f"--pid-file={directory}/mariadb.pid", "--skip-name-resolve",
            "--max-connections=1000", "--innodb-buffer-pool-size=128M", *(("--user=root",) if os.geteuid() == 0 else ()),
        ])

    def install(self) -> None:
        installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if not installer:
            raise RuntimeError("mariadb-install-db (or mysql_install_db) not found")
        subprocess.run([installer, "--no-defaults", f"--datadir={self.data}", "--auth-root-authentication-method=normal",
                        "--skip-test-db", *(("--user=root",) if os.geteuid() == 0 else ())],
                       check=True, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def server(self) -> dict:
        return {"host": HOST, "port": self.port, "user": "root", "password": ""}

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(**self.server, database=database, autocommit=True, connect_timeout=2,
                               cursorclass=pymysql.cursors.DictCursor)

    def ready(self) -> bool:
        try:
            self.connect().close()
            return True
        except pymysql.MySQLError:
            return False


# --- the load -------------------------------------------------------------------------------------
class Load:
    """Client threads driving workflows through the gateway until `stop` is set; every error counted."""

    def __init__(self, gateway: str, settings, clients: int, seed: int, rate: float):
        self.gateway, self.settings, self.clients, self.seed, self.rate = gateway, settings, clients, seed, rate
        self.next_slot = time.monotonic()
        self.seller_token = issue_token(settings, SELLER, ttl=3600)  # refunds are the seller's (api/payments/refunds.py)
        self.counts: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        self.error_times: list[float] = []
        self.samples: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        # Paid-order follow-ups, FIFO by due time, worked by threads of their own so creators never wait.
        self.follow_ups: queue.Queue = queue.Queue()

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def error(self, kind: str, detail: str) -> None:
        with self.lock:
            self.errors[kind] += 1
            self.error_times.append(time.monotonic())
            if len(self.samples) < 20:
                self.samples.append(f"{kind}: {detail}"[:300])

    def call(self, method: str, path: str, token: str, body: dict | None = None, key: bool = False,
             tries: int = 3) -> tuple[int | None, dict | None]:
        """One request, retried (same Idempotency-Key) after a connection error or a 5xx."""
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(tries):
            request = urllib.request.Request(self.gateway + path, data=data, method=method, headers=headers)
            try:
                with _DIRECT.open(request, timeout=15) as response:
                    return response.status, json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as exc:
                payload = exc.read()
                exc.close()
                if exc.code < 500:
                    try:
                        return exc.code, json.loads(payload or b"{}")
                    except ValueError:
                        return exc.code, None
                refused = b'"error":"overloaded"' in payload  # admission control, not a fault
                self.error(f"http_{exc.code}{'_overloaded' if refused else ''}", f"{method} {path}: {payload[:160]!r}")
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.error("connection", f"{method} {path}: {exc!r}")
            if self.stop.is_set():
                break
            time.sleep(1 + attempt)
        return None, None

    def workflow(self, rng: random.Random) -> None:
        buyer = uuid.uuid4()
        token = issue_token(self.settings, buyer, ttl=3600)
        roll = rng.random()
        # The sandbox decides by the cents (README "Payments and risk"): .13 declined, .77 callback lost.
        price, quantity = ("19.13", 1) if roll < 0.05 else ("49.77", 1) if roll < 0.10 else ("99.50", 2)
        item = {"product_uuid": str(uuid.uuid4()), "product_name": "Tea set", "product_price": price, "quantity": quantity}
        status, order = self.call("POST", "/api/orders/", token, {
            "seller_uuid": str(SELLER), "items": [item], "shipping_name": "Li Lei",
            "shipping_phone": "+86 138 0000 0000", "shipping_address": "1 Renmin Road, Hangzhou"}, key=True)
        if status != 201:
            self.count("order_not_created")
            return
        self.count("orders_created")
        status, payment = self.call("POST", "/api/payments/", token,
                                    {"order_uuid": order["order_uuid"], "payment_method": "sandbox"}, key=True)
        if status != 201:
            self.count(f"payment_not_created_{status}")
            return
        self.count("payments_created")
        if price == "99.50" and rng.random() < 0.3:
            now = time.monotonic()
            self.follow_ups.put((now + 1, now, order["order_uuid"], payment["payment_uuid"], token,
                                 Decimal(payment["amount"])))

    def follow_up(self, rng: random.Random) -> None:
        """Once the order is paid: cancel it (full refund), or two racing refunds that together exceed
        the capture, or a refund the provider refuses. Not paid yet: looked at again 2 s later."""
        try:
            due, since, order_uuid, payment_uuid, token, amount = self.follow_ups.get(timeout=0.5)
        except queue.Empty:
            return
        time.sleep(max(0.0, due - time.monotonic()))
        status, order = self.call("GET", f"/api/orders/{order_uuid}/", token, tries=1)
        if status != 200 or order["status"] == "pending_payment":
            if time.monotonic() - since < 45 and not self.stop.is_set():
                self.follow_ups.put((time.monotonic() + 2, since, order_uuid, payment_uuid, token, amount))
            return
        if order["status"] != "paid":
            return
        self.count("paid_seen_by_client")
        choice = rng.random()
        if choice < 0.45:
            status, _ = self.call("POST", f"/api/orders/{order_uuid}/cancel/", token, {"reason": "chaos"})
            self.count(f"cancel_paid_{status}")
        elif choice < 0.9:
            part = (amount * Decimal("0.6")).quantize(Decimal("0.01"))
            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(lambda _: self.call("POST", f"/api/payments/{payment_uuid}/refund/", self.seller_token,
                                                            {"amount": f"{part}", "reason": "chaos"}, key=True),
                                        range(2)))
            for status, body in answers:
                self.count(f"refund_{status}" + (f"_{body.get('error')}" if status and status >= 400 and body else ""))
        else:
            status, _ = self.call("POST", f"/api/payments/{payment_uuid}/refund/", self.seller_token,
                                  {"amount": "10.31", "reason": "chaos: provider refuses"}, key=True)
            self.count(f"refund_refused_by_provider_{status}")

    def pace(self) -> None:
        """Start workflows at `rate` per second over all clients; after a stall, catch up by one second at most."""
        with self.lock:
            slot = self.next_slot = max(self.next_slot + 1 / self.rate, time.monotonic() - 1)
        time.sleep(max(0.0, slot - time.monotonic()))

    def _client(self, index: int, follower: bool) -> None:
        rng = random.Random(self.seed * 1000 + index)
        while not self.stop.is_set():
            try:
                if follower:
                    self.follow_up(rng)
                else:
                    self.pace()
                    self.count("workflows_started")
                    self.workflow(rng)
            except Exception as exc:  # a bug in the client must not end the run silently
                self.error("client_exception", repr(exc))

    def start(self) -> None:
        for index in range(self.clients + 2):
            follower = index >= self.clients
            thread = threading.Thread(target=self._client, args=(index, follower), daemon=True,
                                      name=f"chaos-{'follower' if follower else 'client'}-{index}")
            thread.start()
            self.threads.append(thread)

    def finish(self, timeout: float = 60) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))


# --- the faults -----------------------------------------------------------------------------------
class Chaos:
    """Owns the system's processes one supervisor each, so any one can be killed and started again."""

    def __init__(self, system: System, redis_server: PrivateRedis, mariadb: PrivateMariaDB, rng: random.Random):
        self.system, self.redis, self.mariadb, self.rng = system, redis_server, mariadb, rng
        self.specs = {}
        self.supervisors: dict[str, Supervisor] = {}
        self.counts: collections.Counter = collections.Counter()
        self.timeline: list[tuple[float, str]] = []
        self.outages: list[tuple[float, float]] = []
        self.started = time.monotonic()
        self.expected_deaths: set[str] = set()  # killed on purpose: restarted without counting

    def note(self, what: str) -> None:
        self.timeline.append((round(time.monotonic() - self.started, 1), what))

    def start_all(self, specs) -> None:
        for spec in specs:
            self.specs[spec.name] = spec
        self.system.start(list(specs))
        supervisor = self.system.supervisors.pop()
        for child in supervisor.children:  # one supervisor per child from now on
            single = Supervisor([child.spec], supervisor.output, stop_timeout=15)
            single.children.append(child)
            self.supervisors[child.name] = single
            self.system.supervisors.append(single)

    def restart(self, name: str) -> None:
        old = self.supervisors.pop(name)
        for child in old.children:
            child.reap()
        if old in self.system.supervisors:
            self.system.supervisors.remove(old)
        fresh = Supervisor([self.specs[name]], Output(self.system.log), stop_timeout=15)
        fresh.start(self.system.env)
        self.supervisors[name] = fresh
        self.system.supervisors.append(fresh)

    def watch(self) -> None:
        """Any child that exited (ours or on its own) is started again; those we did not kill are counted."""
        for name, supervisor in list(self.supervisors.items()):
            child = supervisor.children[0]
            if not child.alive:
                if name not in self.expected_deaths:
                    self.counts["unplanned_exits"] += 1
                    self.counts[f"unplanned_exit:{name}"] += 1
                    self.note(f"{name} exited on its own ({child.process.poll()}); restarting it")
                self.expected_deaths.discard(name)
                self.restart(name)

    def kill_random_worker(self) -> None:
        targets = []
        for name, supervisor in self.supervisors.items():
            if not name.startswith("worker-"):
                continue
            main = supervisor.children[0]
            if not main.alive:
                continue
            targets.append((name, "main", main.process.pid))
            try:
                targets += [(name, "child", c.pid) for c in psutil.Process(main.process.pid).children()]
            except psutil.Error:
                pass
        if not targets:
            return
        name, role, pid = self.rng.choice(targets)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.counts["kills"] += 1
        self.counts[f"kills_{role}"] += 1
        self.counts[f"kill:{name}:{role}"] += 1
        self.note(f"SIGKILL {name} {role} pid {pid}")
        if role == "main":
            self.expected_deaths.add(name)
            time.sleep(0.3)
            self.watch()  # reaps the pool's orphaned children with its group and starts it again
            self.counts["restarts"] += 1

    def restart_server(self, server: Server, down: float) -> None:
        began = time.monotonic()
        self.note(f"SIGKILL private {server.name}")
        server.kill()
        time.sleep(down)
        server.start()
        self.outages.append((began, time.monotonic()))
        self.note(f"private {server.name} back after {time.monotonic() - began:.1f}s")
        self.counts[f"{server.name}_restarts"] += 1


# --- reading the outcome --------------------------------------------------------------------------
def _u(value) -> str:
    return uuid.UUID(str(value)).hex


class Books:
    """The run's three databases on the private MariaDB, read with plain SQL."""

    def __init__(self, mariadb: PrivateMariaDB, scratch: Scratch):
        self.mariadb = mariadb
        self.names = {name: f"cfmp_test_bench_{scratch.run_id}_{name}" for name in SERVICES}

    def rows(self, service: str, sql: str, *args) -> list[dict]:
        with self.mariadb.connect(self.names[service]) as connection, connection.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def scalar(self, service: str, sql: str, *args):
        row = self.rows(service, sql, *args)
        return next(iter(row[0].values())) if row else None

    def in_flight(self) -> dict[str, int]:
        return {
            "orders pending_payment": self.scalar("orders", "SELECT COUNT(*) FROM orders WHERE status='pending_payment'"),
            "payments pending/review/processing": self.scalar(
                "payments", "SELECT COUNT(*) FROM payments WHERE status IN ('pending','review','processing')"),
            "refunds pending/processing": self.scalar(
                "payments", "SELECT COUNT(*) FROM refunds WHERE status IN ('pending','processing')"),
            "payments refund_due, not refunded": self.scalar(
                "payments", "SELECT COUNT(*) FROM payments WHERE refund_due AND refunded_amount < amount"),
            "outbox rows unpublished": sum(self.scalar(s, f"SELECT COUNT(*) FROM {t} WHERE published_at IS NULL") for s, t in
                                           (("orders", "order_outbox"), ("payments", "payment_outbox"))),
            "deliveries open": self.scalar(
                "notifications", "SELECT COUNT(*) FROM notification_deliveries WHERE status IN ('pending','failed')"),
            "fan-outs unrecorded": self.scalar(
                "notifications", "SELECT COUNT(*) FROM notification_fanouts WHERE recorded_at IS NULL"),
            # Published but not consumed yet: queued, or waiting out a retry's backoff.
            "order events not consumed": len(self.unconsumed_order_events()),
        }

    def unconsumed_order_events(self) -> list[str]:
        """Published order events without the fan-out's dedupe row (notification_inbox), its one witness."""
        published = self.rows("orders", "SELECT event_id, event_type FROM order_outbox WHERE event_type LIKE 'order.%%' "
                                        "AND published_at IS NOT NULL")
        fanned = {_u(r["event_id"]) for r in self.rows("notifications", "SELECT event_id FROM notification_inbox "
                                                                        "WHERE consumer = 'notifications.fanout_event'")}
        return sorted(f"{r['event_type']} {r['event_id']}" for r in published if _u(r["event_id"]) not in fanned)


def settle(books: Books, limit: float) -> tuple[float, dict[str, int]]:
    started = time.monotonic()
    last_say = 0.0
    while True:
        try:
            pending = books.in_flight()
        except pymysql.MySQLError as exc:
            pending = {"database unreachable": 1}
            say(f"  settle: {exc}")
        now = time.monotonic()
        if not any(pending.values()) or now - started > limit:
            return round(now - started, 1), pending
        if now - last_say > 10:
            say(f"  settling ({now - started:.0f}s): " + ", ".join(f"{k} {v}" for k, v in pending.items() if v))
            last_say = now
        time.sleep(2)


def check(books: Books, settings) -> tuple[dict, dict[str, list[str]]]:
    """The invariants of issue 7, from the rows alone; returns (counts, violations by invariant)."""
    violations: dict[str, list[str]] = collections.defaultdict(list)
    now = dt.datetime.utcnow()
    orders = books.rows("orders", "SELECT id, order_uuid, status, cancel_reason, created_at FROM orders")
    events = collections.defaultdict(list)
    for row in books.rows("orders", "SELECT order_id, event_type, from_status, to_status FROM order_events ORDER BY id"):
        events[row["order_id"]].append(row)
    payments = books.rows("payments", "SELECT id, payment_uuid, order_uuid, status, amount, refund_due, refund_reserved, "
                                      "refunded_amount, created_at, updated_at, expires_at FROM payments")
    refunds = books.rows("payments", "SELECT payment_id, refund_uuid, amount, status, updated_at FROM refunds")
    succeeded_events = collections.Counter(_u(r["aggregate_uuid"]) for r in books.rows(
        "payments", "SELECT aggregate_uuid FROM payment_outbox WHERE event_type='payment.succeeded'"))

    # 1. Every order's status is explained by its audit trail: a chain from pending_payment to it.
    for order in orders:
        trail, at = events.get(order["id"], []), None
        for entry in trail:
            if entry["from_status"] != at or (at is None and entry["to_status"] != "pending_payment"):
                violations["status explained by audit trail"].append(
                    f"order {order['order_uuid']}: {entry['event_type']} {entry['from_status']}→{entry['to_status']} after {at}")
                break
            at = entry["to_status"]
        else:
            if at != order["status"]:
                violations["status explained by audit trail"].append(
                    f"order {order['order_uuid']}: status {order['status']}, trail ends at {at}")

    # 2. No payment captured twice: at most one captured payment per order, exactly one
    #    payment.succeeded per captured payment and none for the others.
    by_order = collections.defaultdict(list)
    for payment in payments:
        by_order[_u(payment["order_uuid"])].append(payment)
        n, captured = succeeded_events[_u(payment["payment_uuid"])], payment["status"] in CAPTURED
        if n != (1 if captured else 0):
            violations["captured once"].append(f"payment {payment['payment_uuid']} ({payment['status']}): {n} payment.succeeded")
    for order_uuid, attempts in by_order.items():
        if sum(p["status"] in CAPTURED for p in attempts) > 1:
            violations["captured once"].append(f"order {order_uuid}: {sum(p['status'] in CAPTURED for p in attempts)} captured payments")

    # 3. Refunds never exceed the capture, and the payment's books agree with its refunds.
    by_payment = collections.defaultdict(list)
    for refund in refunds:
        by_payment[refund["payment_id"]].append(refund)
    for payment in payments:
        mine = by_payment.get(payment["id"], [])
        succeeded = sum((r["amount"] for r in mine if r["status"] == "succeeded"), Decimal("0"))
        reserved = sum((r["amount"] for r in mine if r["status"] in ("pending", "processing", "succeeded")), Decimal("0"))
        captured = payment["amount"] if payment["status"] in CAPTURED or payment["refund_due"] else Decimal("0")
        if succeeded > captured:
            violations["refunds within capture"].append(f"payment {payment['payment_uuid']}: refunded {succeeded} of {captured}")
        if succeeded != payment["refunded_amount"] or reserved != payment["refund_reserved"]:
            violations["refund books agree"].append(
                f"payment {payment['payment_uuid']}: refunded_amount {payment['refunded_amount']} vs {succeeded} succeeded, "
                f"refund_reserved {payment['refund_reserved']} vs {reserved}")
        expected = {"refunded": succeeded == payment["amount"], "partially_refunded": Decimal("0") < succeeded < payment["amount"],
                    "succeeded": succeeded == 0}.get(payment["status"], True)
        if not expected:
            violations["refund books agree"].append(f"payment {payment['payment_uuid']}: {payment['status']} with {succeeded} refunded")

    # 4. No notification delivered twice per (event, recipient, channel); one inbox row per fan-out.
    for row in books.rows("notifications", "SELECT event_id, recipient_uuid, channel, COUNT(*) AS n FROM notification_deliveries "
                                           "WHERE status='delivered' GROUP BY event_id, recipient_uuid, channel HAVING n > 1"):
        violations["delivered once per channel"].append(f"{row}")
    for row in books.rows("notifications", "SELECT fanout_id, COUNT(*) AS n FROM notifications WHERE fanout_id IS NOT NULL "
                                           "GROUP BY fanout_id HAVING n > 1"):
        violations["delivered once per channel"].append(f"in-app rows of fan-out {row['fanout_id']}: {row['n']}")
    for row in books.rows("notifications", "SELECT f.event_id, f.recipient_uuid, COUNT(*) AS n FROM notifications x JOIN "
                                           "notification_fanouts f ON f.id = x.fanout_id GROUP BY f.event_id, f.recipient_uuid HAVING n > 1"):
        violations["delivered once per channel"].append(f"in-app rows of event {row['event_id']} for {row['recipient_uuid']}: {row['n']}")

    # 5. Money and orders agree: no order paid (or completed) without a captured payment; no captured
    #    money kept for a cancelled order; a paid order's payment is not refunded in full.
    for order in orders:
        mine = by_order.get(_u(order["order_uuid"]), [])
        captured = [p for p in mine if p["status"] in CAPTURED]
        if order["status"] in ("paid", "completed") and not captured:
            violations["paid only with a captured payment"].append(f"order {order['order_uuid']} {order['status']}: "
                                                                   f"payments {[p['status'] for p in mine]}")
        if order["status"] == "paid" and any(p["status"] == "refunded" for p in captured):
            violations["paid only with a captured payment"].append(f"order {order['order_uuid']} paid, its payment refunded in full")
        if order["status"] == "cancelled":
            kept = [p for p in mine if (p["status"] in CAPTURED or p["refund_due"]) and p["refunded_amount"] < p["amount"]]
            if kept:
                violations["no money kept for a cancelled order"].append(
                    f"order {order['order_uuid']} cancelled ({order['cancel_reason']}): payment "
                    f"{kept[0]['payment_uuid']} {kept[0]['status']} refunded {kept[0]['refunded_amount']} of {kept[0]['amount']} "
                    f"(order created {order['created_at']:%H:%M:%S}, payment updated {kept[0]['updated_at']:%H:%M:%S} UTC)")

    # 6. Nothing stuck: each kind of work is past the point where its own sweep should have moved it.
    sweep = settings.payment_sweep_interval
    slack = dt.timedelta(seconds=2 * sweep + 5)
    for payment in payments:
        status = payment["status"]
        if status == "pending" and payment["created_at"] < now - dt.timedelta(seconds=settings.payment_redrive_after) - slack \
                and payment["expires_at"] < now - slack:
            violations["nothing stuck"].append(f"payment {payment['payment_uuid']} pending since {payment['created_at']}")
        if status == "review" and payment["expires_at"] < now - slack:
            violations["nothing stuck"].append(f"payment {payment['payment_uuid']} in review past its expiry")
        if status == "processing" and payment["updated_at"] < now - dt.timedelta(seconds=settings.payment_reconcile_after) - slack:
            violations["nothing stuck"].append(f"payment {payment['payment_uuid']} processing since {payment['updated_at']}")
    for refund in refunds:
        if refund["status"] in ("pending", "processing"):
            violations["nothing stuck"].append(f"refund {refund['refund_uuid']} {refund['status']} since {refund['updated_at']}")
    for order in orders:
        if order["status"] == "pending_payment" and \
                order["created_at"] < now - dt.timedelta(seconds=settings.order_payment_timeout) - slack:
            violations["nothing stuck"].append(f"order {order['order_uuid']} pending_payment since {order['created_at']}")
    relay = dt.timedelta(seconds=settings.outbox_relay_interval + OUTBOX_RELAY_GRACE + 1)
    for service, table in (("orders", "order_outbox"), ("payments", "payment_outbox")):
        for row in books.rows(service, f"SELECT event_type, event_id, created_at FROM {table} "
                                       "WHERE published_at IS NULL AND created_at < %s", now - relay):
            violations["nothing stuck"].append(f"{table} {row['event_type']} {row['event_id']} unpublished since {row['created_at']}")
    watchdog = now - dt.timedelta(seconds=NOTIFICATION_WATCHDOG + 10)
    for row in books.rows("notifications", "SELECT id, channel, status, next_attempt_at FROM notification_deliveries "
                                           "WHERE status IN ('pending','failed') AND next_attempt_at < %s", watchdog):
        violations["nothing stuck"].append(f"delivery {row['id']} {row['channel']} {row['status']} due {row['next_attempt_at']}")

    # Not an invariant of the issue, measured next to them: events whose consumers never saw them.
    lost = {"notifications.fanout_event": books.unconsumed_order_events()}

    statuses = collections.Counter(o["status"] for o in orders)
    cancelled = collections.Counter(o["cancel_reason"] for o in orders if o["status"] == "cancelled")
    counts = {
        "orders": len(orders), "orders_by_status": dict(statuses), "cancelled_by_reason": dict(cancelled),
        "orders_ever_paid": sum(any(e["to_status"] == "paid" for e in events.get(o["id"], [])) for o in orders),
        "payments": len(payments), "payments_by_status": dict(collections.Counter(p["status"] for p in payments)),
        "payments_refund_due": sum(bool(p["refund_due"]) for p in payments),
        "refunds_by_status": dict(collections.Counter(r["status"] for r in refunds)),
        "callbacks": books.scalar("payments", "SELECT COUNT(*) FROM payment_callbacks"),
        "reconciled_callbacks": books.scalar("payments", "SELECT COUNT(*) FROM payment_callbacks WHERE event_id LIKE 'query:%%'"),
        "dead_letters": {s: books.scalar(s, f"SELECT COUNT(*) FROM {t}") for s, t in
                         (("orders", "order_dead_letters"), ("payments", "payment_dead_letters"),
                          ("notifications", "notification_dead_letters"))},
        "deliveries_by_status": dict(collections.Counter(r["status"] for r in books.rows(
            "notifications", "SELECT status FROM notification_deliveries"))),
        "deliveries_tried_more_than_once": books.scalar(
            "notifications", "SELECT COUNT(*) FROM notification_deliveries WHERE attempts > 1"),
        "events_never_consumed": {k: len(v) for k, v in lost.items()},
        "events_never_consumed_sample": {k: v[:5] for k, v in lost.items()},
    }
    return counts, dict(violations)


RECEIVED = re.compile(r"Task ([\w.]+)\[([^\]]+)\] received")
RETRY = re.compile(r"Task ([\w.]+)\[([^\]]+)\] retry")


def log_counts(path: Path) -> dict:
    """What the processes' own output shows: task ids received more often than sent (retries
    aside, i.e. redelivered or re-published), worker processes lost, connection losses."""
    received, retried = collections.Counter(), collections.Counter()
    lost_children = worker_lost = connection_lost = 0
    with path.open(errors="replace") as lines:
        for line in lines:
            if (match := RECEIVED.search(line)):
                received[match.group(2)] += 1
            elif (match := RETRY.search(line)):
                retried[match.group(2)] += 1
            if "exited with 'signal 9" in line:
                lost_children += 1
            if "WorkerLostError" in line:
                worker_lost += 1
            if "Connection to broker lost" in line or "consumer: Cannot connect" in line:
                connection_lost += 1
    again = {tid: n - 1 - retried[tid] for tid, n in received.items() if n - 1 - retried[tid] > 0}
    return {"tasks_received": sum(received.values()), "task_ids_received_again": len(again),
            "redeliveries": sum(again.values()), "prefork_children_lost": lost_children,
            "worker_lost_errors": worker_lost, "broker_connection_lost_lines": connection_lost}


# --- the run --------------------------------------------------------------------------------------
def run(seconds: float, rate: float, clients: int, kill_every: float, settle_limit: float, seed: int, log_level: str,
        directory: Path, scratch_holder: list, max_backlog: int = 100) -> dict:
    rng = random.Random(seed)
    redis_server, mariadb = PrivateRedis(directory), PrivateMariaDB(directory)
    servers = [redis_server, mariadb]
    system = None
    try:
        say(f"private redis-server on :{redis_server.port}, mariadbd on :{mariadb.port} (in {directory})")
        redis_server.start()
        mariadb.install()
        mariadb.start()
        scratch = Scratch(mysql=mariadb.server, redis_url=redis_server.url, directory=str(directory))
        scratch_holder.append(scratch)
        system = System(scratch, log_level=log_level, extra_env={
            "SANDBOX_CALLBACK_DELAY": "0.1", "PAYMENT_MAX_BACKLOG": str(max_backlog),
            **{k: str(v) for k, v in TIMINGS.items()}})
        system.migrate()
        from workers.pools import POOLS

        chaos = Chaos(system, redis_server, mariadb, rng)
        chaos.start_all([*(system.service(name) for name in SERVICES), system.gateway(),
                         *(system.worker(pool) for pool in POOLS), system.beat()])
        load = Load(system.url("gateway"), system.settings, clients, seed, rate)
        books = Books(mariadb, scratch)

        say(f"load for {seconds:.0f}s: {rate:g} workflows/s over {clients} clients; a worker SIGKILLed every ~{kill_every:.0f}s, "
            f"Redis restarted at ~{seconds * 0.3:.0f}s, MariaDB at ~{seconds * 0.6:.0f}s")
        started = time.monotonic()
        chaos.started = started
        deadline = started + seconds
        next_kill = started + rng.uniform(0.5, 1.5) * kill_every
        redis_at, mariadb_at = started + seconds * 0.3, started + seconds * 0.6
        last_say = started
        load.start()
        while (now := time.monotonic()) < deadline:
            chaos.watch()
            if now >= next_kill:
                chaos.kill_random_worker()
                next_kill = now + rng.uniform(0.5, 1.5) * kill_every
            if redis_at and now >= redis_at:
                redis_at = None
                chaos.restart_server(redis_server, down=3)
            if mariadb_at and now >= mariadb_at:
                mariadb_at = None
                chaos.restart_server(mariadb, down=3)
            if now - last_say >= 10:
                last_say = now
                say(f"  {now - started:5.0f}s: orders {load.counts['orders_created']}, payments "
                    f"{load.counts['payments_created']}, client errors {sum(load.errors.values())}, kills "
                    f"{chaos.counts['kills']} ({chaos.counts['kills_main']} main), unplanned exits "
                    f"{chaos.counts['unplanned_exits']}")
            time.sleep(0.2)
        say("load stopped; waiting for the clients' last requests")
        load.finish()
        chaos.watch()
        say(f"settling (at most {settle_limit:.0f}s)")
        settled_in, pending = settle(books, settle_limit)
        chaos.watch()
        say(f"settled in {settled_in}s" + ("" if not any(pending.values()) else f"; still in flight: {pending}"))
        counts, violations = check(books, system.settings)
        outage_errors = sum(1 for t in load.error_times if any(a - 1 <= t <= b + 20 for a, b in chaos.outages))
    finally:
        with shielded():
            if system is not None:
                system.stop()
            for server in servers:
                server.stop()
    logs = log_counts(system.log_path)
    return {
        "settings": {"seconds": seconds, "rate": rate, "clients": clients, "kill_every": kill_every, "settle_limit": settle_limit,
                     "seed": seed, **TIMINGS, "PAYMENT_MAX_BACKLOG": max_backlog},
        "client": {"counts": dict(load.counts), "errors": dict(load.errors), "errors_total": sum(load.errors.values()),
                   "errors_around_outages": outage_errors, "error_samples": load.samples},
        "faults": {**dict(chaos.counts), "timeline": chaos.timeline},
        "settle": {"seconds": settled_in, "still_in_flight": pending},
        "outcome": counts, "logs": logs,
        "violations": {name: {"count": len(items), "sample": items[:10]} for name, items in violations.items()},
    }


INVARIANTS = ("status explained by audit trail", "captured once", "refunds within capture", "refund books agree",
              "delivered once per channel", "paid only with a captured payment", "no money kept for a cancelled order",
              "nothing stuck")


def print_report(result: dict) -> None:
    client, faults, outcome, logs = result["client"], result["faults"], result["outcome"], result["logs"]
    statuses = outcome["orders_by_status"]
    refunds = outcome["refunds_by_status"]
    print()
    print(report.table(("measure", "value"), [
        ("load seconds / workflows per second", f"{result['settings']['seconds']:.0f} / {result['settings']['rate']:g}"),
        ("orders created (in the database)", outcome["orders"]),
        ("orders paid at some point", outcome["orders_ever_paid"]),
        ("orders now paid / completed / cancelled / pending", f"{statuses.get('paid', 0)} / {statuses.get('completed', 0)} / "
                                                              f"{statuses.get('cancelled', 0)} / {statuses.get('pending_payment', 0)}"),
        ("cancelled by reason", ", ".join(f"{k} {v}" for k, v in sorted(outcome["cancelled_by_reason"].items())) or "-"),
        ("payments by status", ", ".join(f"{k} {v}" for k, v in sorted(outcome["payments_by_status"].items()))),
        ("refunds succeeded / failed / open", f"{refunds.get('succeeded', 0)} / {refunds.get('failed', 0)} / "
                                              f"{refunds.get('pending', 0) + refunds.get('processing', 0)}"),
        ("racing refunds refused (422: would exceed the capture)", sum(v for k, v in client["counts"].items()
                                                                      if k.startswith("refund_422"))),
        ("payments captured after the order was cancelled (refund due)", outcome["payments_refund_due"]),
        ("callbacks recorded / of them by reconciliation", f"{outcome['callbacks']} / {outcome['reconciled_callbacks']}"),
        ("worker SIGKILLs (main / prefork child)", f"{faults.get('kills', 0)} ({faults.get('kills_main', 0)} / "
                                                  f"{faults.get('kills_child', 0)})"),
        ("Redis / MariaDB restarts", f"{faults.get('redis_restarts', 0)} / {faults.get('mariadb_restarts', 0)}"),
        ("processes that exited on their own (restarted)", faults.get("unplanned_exits", 0)),
        ("client errors (all / within 20 s of an outage)", f"{client['errors_total']} / {client['errors_around_outages']}"),
        ("client errors by kind", ", ".join(f"{k} {v}" for k, v in sorted(client["errors"].items())) or "-"),
        ("task messages received again (redelivered or re-published)", f"{logs['redeliveries']} "
                                                                       f"({logs['task_ids_received_again']} task ids)"),
        ("dead letters (orders / payments / notifications)", " / ".join(str(v) for v in outcome["dead_letters"].values())),
        ("deliveries by status", ", ".join(f"{k} {v}" for k, v in sorted(outcome["deliveries_by_status"].items()))),
        ("order events never consumed (fan-out)", outcome["events_never_consumed"]["notifications.fanout_event"]),
        ("settled in (s)", result["settle"]["seconds"]),
    ]))
    print("client actions:", ", ".join(f"{k} {v}" for k, v in sorted(client["counts"].items())))
    print()
    print(report.table(("invariant", "violations"), [(name, result["violations"].get(name, {}).get("count", 0))
                                                     for name in INVARIANTS]))
    for name, found in result["violations"].items():
        print(f"\n{name}: {found['count']} violation(s), e.g.")
        for item in found["sample"]:
            print(f"  {item}")


@click.command()
@click.option("--seconds", type=float, default=120, show_default=True, help="Length of the load under faults.")
@click.option("--rate", type=float, default=1.0, show_default=True,
              help="Workflows started per second (below the system's maximum: faults, not saturation, are the test).")
@click.option("--clients", type=int, default=6, show_default=True, help="Client threads.")
@click.option("--kill-every", type=float, default=5, show_default=True, help="Mean seconds between worker SIGKILLs.")
@click.option("--settle", "settle_limit", type=float, default=150, show_default=True,
              help="Longest wait for in-flight work after the load (the notification watchdog needs ~90 s).")
@click.option("--seed", type=int, default=None, help="Random seed (default: from the clock; recorded).")
@click.option("--log-level", default="INFO", show_default=True, help="LOG_LEVEL of every process.")
@click.option("--keep", is_flag=True, help="Keep the temporary directory (processes.log, the MariaDB datadir).")
@click.option("--max-backlog", type=int, default=100, show_default=True,
              help="PAYMENT_MAX_BACKLOG, scaled to the run's 60 s payment timeout; 0 admits everything.")
def main(seconds: float, rate: float, clients: int, kill_every: float, settle_limit: float, seed: int | None, log_level: str,
         keep: bool, max_backlog: int) -> None:
    seed = seed if seed is not None else int(time.time())
    directory = Path(tempfile.mkdtemp(prefix="cfmp-chaos-"))
    document = {"machine": report.machine()}
    say(f"chaos run (seed {seed}): load average {document['machine']['load_average_at_start']}; "
        f"processes' output in {directory / 'processes.log'}")
    holder: list[Scratch] = []
    try:
        with interruptible():
            result = run(seconds, rate, clients, kill_every, settle_limit, seed, log_level, directory, holder, max_backlog)
    except KeyboardInterrupt:
        say("interrupted: everything stopped")
        raise SystemExit(130) from None
    finally:
        with shielded():
            if keep:
                say(f"private servers stopped; kept {directory}")
            else:
                shutil.rmtree(directory, ignore_errors=True)  # the private servers' data go with it
                say("private servers stopped, temporary directory removed")
    print_report(result)
    say(f"saved {report.save('chaos', {**document, **result})}")
    if result["violations"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
