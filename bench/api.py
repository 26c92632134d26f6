"""API benchmark: `POST /api/orders/` and `GET /api/orders/` under wrk, through the gateway and
straight to the order service, next to a bare Flask + Flask-SQLAlchemy insert (the ceiling).

    python -m bench.api [--seconds 10] [--clients 1,16,64]

Starts on scratch MariaDB databases: the order service and the gateway (`cfmp serve`, `cfmp gateway`,
gunicorn gthread, 4 workers × 4 threads each) and the ceiling app (same server settings). No worker pool runs: the
events each new order publishes wait in the run's Redis prefix, so the figures are the HTTP path
(validation, auth, the order, its audit row and outbox row, the publish after commit) and nothing
else competes for the two cores. Each load level runs every target back to back, so a change in
the machine's load hits them alike.
"""
from __future__ import annotations

import json
import sys
import time
import urllib.request
import uuid

import click

from bench import cpu, loadgen, profile, report
from bench.scratch import Scratch
from bench.system import System, interruptible, say, shielded
from common.serve import DEFAULT_THREADS, DEFAULT_WORKERS

SELLER = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
POST_BUYER = uuid.UUID("00000000-0000-4000-8000-0000000000b1")
GET_BUYER = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
TARGETS = ("create via gateway", "create direct", "ceiling insert", "list via gateway", "list direct")


def order_body() -> bytes:
    item = {"product_uuid": str(uuid.uuid4()), "product_name": "Tea set", "product_price": "99.50", "quantity": 2}
    return json.dumps({
        "seller_uuid": str(SELLER), "items": [item, {**item, "product_uuid": str(uuid.uuid4()),
                                                     "product_name": "Cups", "product_price": "10.00"}],
        "shipping_name": "Li Lei", "shipping_phone": "+86 138 0000 0000",
        "shipping_address": "1 Renmin Road, Hangzhou",
    }).encode()


def seed_orders(url: str, token: str, count: int) -> None:
    """Give the list's buyer a fixed history (two pages), so every list answers the same rows."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(count):
        request = urllib.request.Request(f"{url}/api/orders/", data=order_body(), method="POST", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with opener.open(request, timeout=10) as response:
            assert response.status == 201, response.status


def requests_for(system: System, tokens: dict[str, str], ceiling_url: str) -> dict[str, dict]:
    gateway, direct, body = system.url("gateway"), system.url("orders"), order_body()
    post, get = tokens["post"], tokens["get"]
    return {
        "create via gateway": {"url": f"{gateway}/api/orders/", "method": "POST", "body": body, "token": post},
        "create direct": {"url": f"{direct}/api/orders/", "method": "POST", "body": body, "token": post},
        "ceiling insert": {"url": f"{ceiling_url}/insert", "method": "POST", "body": body},
        "list via gateway": {"url": f"{gateway}/api/orders/", "method": "GET", "token": get},
        "list direct": {"url": f"{direct}/api/orders/", "method": "GET", "token": get},
    }


def ratios(results: dict[str, dict[int, dict]]) -> dict:
    def peak(target: str) -> float:
        return max(run["rps"] for run in results[target].values())

    levels = sorted(results["create direct"])
    return {
        "create_direct_vs_ceiling_peak": round(peak("create direct") / peak("ceiling insert"), 3),
        "create_gateway_vs_ceiling_peak": round(peak("create via gateway") / peak("ceiling insert"), 3),
        "per_clients": {str(c): {
            "create_direct_vs_ceiling": round(results["create direct"][c]["rps"] / results["ceiling insert"][c]["rps"], 3),
            "create_gateway_vs_ceiling": round(results["create via gateway"][c]["rps"] / results["ceiling insert"][c]["rps"], 3),
            "create_gateway_p50_vs_direct": round(results["create via gateway"][c]["p50_ms"] / results["create direct"][c]["p50_ms"], 3),
            "list_gateway_p50_vs_direct": round(results["list via gateway"][c]["p50_ms"] / results["list direct"][c]["p50_ms"], 3),
        } for c in levels},
    }


def print_report(results: dict[str, dict[int, dict]], summary: dict) -> None:
    def costs(target: str, run: dict) -> tuple[float, ...]:
        per = run["cpu_ms_per_request"]
        app = per["ceiling"] if target.startswith("ceiling") else per["orders"]
        return app, per["gateway"], per["mariadb"], per["redis"], per["wrk"]

    rows = [(target, c, run["rps"], run["p50_ms"], run["p95_ms"], run["p99_ms"], run["errors"], *costs(target, run))
            for target in TARGETS for c, run in sorted(results[target].items())]
    print()
    print(report.table(("target", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
                        "CPU ms/req: app", "gateway", "mariadb", "redis", "wrk"), rows))
    print()
    print("create direct ÷ ceiling (peak req/s):  ",
          report.verdict(summary["create_direct_vs_ceiling_peak"], 0.6, at_least=True))
    print("create via gateway ÷ ceiling (peak):   ",
          report.verdict(summary["create_gateway_vs_ceiling_peak"], 0.45, at_least=True))
    for c, per in summary["per_clients"].items():
        print(f"clients {c:>3}: gateway p50 ÷ direct p50  create "
              f"{report.verdict(per['create_gateway_p50_vs_direct'], 1.25, at_least=False)}, list "
              f"{report.verdict(per['list_gateway_p50_vs_direct'], 1.25, at_least=False)}")


def measure(system: System, targets: dict[str, dict], levels: list[int], seconds: float) -> dict[str, dict[int, dict]]:
    groups = {child.name: child.process.pid for child in system.children()}
    say("warming up (2 s per target)")
    for spec in targets.values():
        loadgen.run(connections=4, seconds=2, **spec)
    results: dict[str, dict[int, dict]] = {target: {} for target in TARGETS}
    total, done = len(levels) * len(TARGETS), 0
    for clients in levels:
        for target in TARGETS:
            done += 1
            before, wrk_before = cpu.snapshot(groups), cpu.own_children()
            run = loadgen.run(connections=clients, seconds=seconds, **targets[target]).as_dict()
            used = {**cpu.spent(before, cpu.snapshot(groups)), "wrk": round(cpu.own_children() - wrk_before, 2)}
            run["cpu_seconds"] = used
            run["cpu_ms_per_request"] = {name: round(1000 * value / max(1, run["requests"]), 3)
                                         for name, value in used.items()}
            run["load_average"] = report.load_average()
            results[target][clients] = run
            say(f"[{done}/{total}] {target:<19} clients {clients:>3}: {run['rps']:>8.1f} req/s  "
                f"p50 {run['p50_ms']:.1f} ms  p99 {run['p99_ms']:.1f} ms  errors {run['errors']}  "
                f"load {run['load_average'][0]}")
    return results


def profiles(system: System, targets: dict[str, dict], clients: int, seconds: float) -> dict[str, dict]:
    """After the measured runs (py-spy costs CPU too): where creating an order spends its time, in
    the order service (straight to it) and in the gateway (through it)."""
    pids = {child.name: child.process.pid for child in system.children()}
    found = {}
    for target, process in (("create direct", "orders"), ("create via gateway", "gateway"),
                            ("ceiling insert", "ceiling")):
        out = profile.keep_path(f"api-{process}")
        say(f"profiling {process} under '{target}', {clients} clients, {seconds:g} s (py-spy)")
        time.sleep(2)  # the previous run's backlog drains first
        profiler = profile.Profiler(pids[process], out)
        try:
            loadgen.run(connections=clients, seconds=seconds, **targets[target])
        finally:
            profiler.stop()
        found[process] = profile.hot(out) if out.exists() else {"ours": [], "self": []}
    return found


@click.command()
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Duration of each wrk run.")
@click.option("--clients", default="1,16,64", show_default=True, help="Concurrent connections, comma-separated.")
@click.option("--seed", type=int, default=40, show_default=True, help="Orders the list's buyer has.")
@click.option("--profile/--no-profile", "with_profile", default=True, show_default=True,
              help="Profile the order service and the gateway with py-spy afterwards (when installed).")
@click.option("--log-level", default="INFO", show_default=True, help="LOG_LEVEL of the services.")
def main(seconds: float, clients: str, seed: int, with_profile: bool, log_level: str) -> None:
    from common.tokens import issue_token

    levels = [int(c) for c in clients.split(",")]
    loadgen.ensure_wrk()
    scratch = Scratch()
    system = None
    document = {"machine": report.machine(), "seconds_per_run": seconds, "clients": levels,
                "services": f"gunicorn gthread, {DEFAULT_WORKERS} workers × {DEFAULT_THREADS} threads each; MariaDB; "
                            f"LOG_LEVEL {log_level}"}
    say(f"run {scratch.run_id}: load average {document['machine']['load_average_at_start']}")
    try:
        with interruptible():
            system = System(scratch, log_level=log_level,
                            extra_env={"BENCH_CEILING_DB_URL": scratch.create_database("ceiling")})
            system.migrate()
            system.start([system.service("orders"), system.gateway(),
                          system.custom("ceiling", (sys.executable, "-m", "bench.ceiling", "--port", "0"), "/health")])
            ceiling_url = next(child.url for child in system.children() if child.name == "ceiling")
            tokens = {"post": issue_token(system.settings, POST_BUYER, ttl=86400),
                      "get": issue_token(system.settings, GET_BUYER, ttl=86400)}
            seed_orders(system.url("orders"), tokens["get"], seed)
            targets = requests_for(system, tokens, ceiling_url)
            results = measure(system, targets, levels, seconds)
            hot = profiles(system, targets, 16, seconds) if with_profile and profile.available() else {}
    except KeyboardInterrupt:
        say("interrupted: stopping everything")
        raise SystemExit(130) from None
    finally:
        with shielded():
            if system is not None:
                system.stop()
            scratch.cleanup()
            say("stopped; scratch databases and Redis keys removed")
    summary = ratios(results)
    print_report(results, summary)
    profile.print_profiles(hot)
    path = report.save("api", {**document, "results": results, "ratios": summary, "profiles": hot})
    say(f"saved {path}")


if __name__ == "__main__":
    main()
