"""Workflow benchmark: orders created and paid with the sandbox provider through the gateway, on the
whole system (three services, gateway, one worker per pool, beat), against Celery's no-op ceiling.

    python -m bench.workflow [--orders 200] [--paced-seconds 30] [-c orders=2,payments=2,...]

1. Saturation: `--orders` workflows started as fast as 8 client threads go; complete workflows per
   second (create → paid → both inbox rows), Celery tasks per workflow and tasks/s (from the workers'
   own counters), CPU seconds per completed order over every process.
2. Half rate: workflows paced at half that rate for `--paced-seconds`; callback → paid and
   event → inbox latency p50/p99, read back from the rows (`bench.flows`).
3. Ceiling: the pools stopped, one no-op worker per pool with the same pool type, concurrency and
   Celery settings (`bench.noop`), fed the same mix of queues; no-op tasks/s, published while the
   workers consume (the ratio's figure) and again with the queues filled first.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import click

from bench import cpu, flows, report
from bench.ceilings import celery_ceiling, task_totals
from bench.driver import Driver
from bench.scratch import Scratch
from bench.system import System, interruptible, say, shielded

SERVICES = ("orders", "payments", "notifications")


def wait_notified(app, target: int, timeout: float, every: float = 0.25) -> float:
    """Block until `target` orders are notified; the monotonic time it happened."""
    deadline, last_say = time.monotonic() + timeout, 0.0
    while True:
        with app.app_context():
            done = flows.notified_orders()
        now = time.monotonic()
        if done >= target:
            return now
        if now > deadline:
            raise TimeoutError(f"only {done} of {target} orders notified after {timeout:.0f}s")
        if now - last_say > 5:
            say(f"  {done}/{target} orders paid and notified")
            last_say = now
        time.sleep(every)


def settled_totals(system: System, workers: int, quiet: float = 1.5) -> dict[str, int]:
    """Task counts once they stop moving: the tail of a workflow (chord bodies) counts with it."""
    totals = task_totals(system.settings, workers=workers)
    while True:
        time.sleep(quiet)
        again = task_totals(system.settings, workers=workers)
        if again == totals:
            return totals
        totals = again


def saturate(system: System, app, driver: Driver, count: int,
             around: Callable[[System], AbstractContextManager] | None = None) -> dict:
    """With `around`, the workflows run inside `around(system)` (e.g. a profiler on the processes)."""
    groups = {child.name: child.process.pid for child in system.children()}
    workers = sum(1 for name in groups if name.startswith(("worker-", "beat")))  # beat may answer too
    tasks_before = settled_totals(system, workers)
    cpu_before, own_before = cpu.snapshot(groups), cpu.own()
    statements_before = system.scratch.statements()
    say(f"saturation: {count} workflows, {driver.clients} clients")
    with around(system) if around else nullcontext():
        started = time.monotonic()
        driver.run(count)
        submitted = time.monotonic()
        finished = wait_notified(app, count, timeout=60 + count)
    used = cpu.spent(cpu_before, cpu.snapshot(groups))
    statements = {name: round((n - statements_before.get(name, 0)) / count, 1)
                  for name, n in system.scratch.statements().items()}
    tasks = {name: n - tasks_before.get(name, 0) for name, n in settled_totals(system, workers).items()}
    elapsed = finished - started
    by_pool = {}
    for name, n in tasks.items():
        by_pool[name.split(".", 1)[0]] = by_pool.get(name.split(".", 1)[0], 0) + n
    app_cpu = sum(v for k, v in used.items() if k not in ("mariadb", "redis"))
    return {
        "workflows": count, "seconds": round(elapsed, 2), "submit_seconds": round(submitted - started, 2),
        "workflows_per_second": round(count / elapsed, 2), "tasks": sum(tasks.values()),
        "tasks_per_workflow": round(sum(tasks.values()) / count, 2),
        # Tasks of these workflows at the rate they completed (the count includes their tails).
        "tasks_per_second": round(sum(tasks.values()) / elapsed, 1), "tasks_by_name": tasks, "tasks_by_queue": by_pool,
        "cpu_seconds": used, "client_cpu_seconds": round(cpu.own() - own_before, 2),
        "mariadb_statements_per_workflow": statements,
        "cpu_seconds_per_order": {"system": round(app_cpu / count, 4),
                                  "with_mariadb_redis": round((app_cpu + used["mariadb"] + used["redis"]) / count, 4)},
    }


def paced(app, driver: Driver, rate: float, seconds: float) -> dict:
    count = max(1, int(rate * seconds))
    say(f"half rate: {count} workflows at {rate:.1f}/s")
    orders = driver.run(count, rate=rate)
    done = len(driver.orders)
    wait_notified(app, done, timeout=60 + count)
    with app.app_context():
        found = flows.latencies(orders)
    summary = {"rate": round(rate, 2), "workflows": count}
    for name, values in found.items():
        summary[name] = {"n": len(values), "p50_s": flows.percentile(values, 50),
                         "p99_s": flows.percentile(values, 99), "max_s": round(max(values), 4) if values else None}
    return summary


def print_report(result: dict) -> None:
    sat, half, ceiling = result["saturation"], result["half_rate"], result["ceiling"]
    print()
    print(report.table(("measure", "value"), [
        ("workflows (saturation)", sat["workflows"]),
        ("complete workflows/s", sat["workflows_per_second"]),
        ("tasks per workflow", sat["tasks_per_workflow"]),
        ("workflow tasks/s", sat["tasks_per_second"]),
        ("Celery no-op tasks/s (same pools)", ceiling["tasks_per_second"]),
        ("  the same, queues filled first (no publisher running)", ceiling["prefilled"]["tasks_per_second"]),
        ("CPU s per completed order (our processes)", sat["cpu_seconds_per_order"]["system"]),
        ("  + MariaDB and Redis", sat["cpu_seconds_per_order"]["with_mariadb_redis"]),
        (f"half rate ({half['rate']}/s): callback→paid p50 / p99 s",
         f"{half['callback_to_paid']['p50_s']} / {half['callback_to_paid']['p99_s']}"),
        ("half rate: event→inbox p50 / p99 s", f"{half['event_to_inbox']['p50_s']} / {half['event_to_inbox']['p99_s']}"),
    ]))
    print()
    print("workflow tasks/s ÷ no-op ceiling:", report.verdict(result["ratios"]["tasks_vs_noop_ceiling"], 0.6, True))
    print("  ÷ the ceiling with its queues filled first:", result["ratios"]["tasks_vs_prefilled_noop_ceiling"])
    per_task = result["cpu_ms_per_task"]
    print("CPU ms per task, workflow:", per_task["workflow"], "| no-op:", per_task["noop"])
    print("  most the machine allows if our task bodies cost nothing:", per_task["bound_tasks_vs_noop_ceiling"],
          f"of the ceiling ({per_task['least_per_workflow_task']} ms per task)")
    for name in ("callback_to_paid", "event_to_inbox"):
        p99 = half[name]["p99_s"]
        print(f"{name} p99 at half rate (s):", report.verdict(p99, 1.0, False) if p99 is not None else "no data")
    print("CPU seconds by process:", sat["cpu_seconds"])
    print("MariaDB statements per workflow:", sat["mariadb_statements_per_workflow"])
    print("tasks by name:", sat["tasks_by_name"])


def parse_concurrency(value: str) -> dict[str, int]:
    return {pool: int(n) for pool, n in (part.split("=") for part in value.split(",") if part)} if value else {}


def run_workflow(scratch: Scratch, orders: int, paced_seconds: float, concurrency: dict[str, int],
                 processes: int, log_level: str,
                 around_saturation: Callable[[System], AbstractContextManager] | None = None) -> dict:
    from workers import create_worker_app
    from workers.pools import POOLS

    system = System(scratch, log_level=log_level, extra_env={"SANDBOX_CALLBACK_DELAY": "0.1"})
    try:
        system.migrate()
        workers = [system.worker(pool, concurrency.get(pool), node=f"{pool}{i}@%h" if processes > 1 else None)
                   for pool in POOLS for i in range(processes)]
        system.start([*(system.service(name) for name in SERVICES), system.gateway(), *workers, system.beat()])
        app = create_worker_app(system.settings)
        driver = Driver(system.url("gateway"), system.settings)
        driver.run(5)  # warm every path once (connections, imports, policy seeding)
        wait_notified(app, 5, timeout=60)
        saturation = saturate(system, app, driver, orders, around_saturation)
        half = paced(app, driver, saturation["workflows_per_second"] / 2, paced_seconds)
        system.stop(system.supervisors[0])
        ceiling = celery_ceiling(system, concurrency, saturation["tasks_by_queue"], max(2000, saturation["tasks"]),
                                 processes)
    finally:
        with shielded():
            system.stop()
    return {"saturation": saturation, "half_rate": half, "ceiling": ceiling, "driver_errors": driver.errors[:10],
            "ratios": {"tasks_vs_noop_ceiling": round(saturation["tasks_per_second"] / ceiling["tasks_per_second"], 3),
                       "tasks_vs_prefilled_noop_ceiling": round(
                           saturation["tasks_per_second"] / ceiling["prefilled"]["tasks_per_second"], 3)},
            "cpu_ms_per_task": cpu_per_task(saturation, ceiling)}


def cpu_per_task(saturation: dict, ceiling: dict) -> dict:
    """Where a task's CPU goes, every process counted (ms per task), in the workflow and in the
    no-op ceiling; and the most workflow tasks/s the machine allows whatever our task bodies do.

    That bound gives each workflow task the no-op ceiling's cost without its publisher (Celery's
    own path in the workers, Redis) plus what the workflow costs around its workers (services,
    gateway, the driver's clients, MariaDB), on every core: `cores ÷ that`, as a ratio to the
    ceiling's tasks/s. The target can only be met below it.
    """
    cores = os.cpu_count() or 1
    workflow = {**saturation["cpu_seconds"], "clients": saturation["client_cpu_seconds"]}
    noop = ceiling["cpu_seconds"]
    per_workflow_task = {name: 1000 * seconds / saturation["tasks"] for name, seconds in workflow.items()}
    per_noop_task = {name: 1000 * seconds / ceiling["tasks"] for name, seconds in noop.items()}
    workers = sum(ms for name, ms in per_workflow_task.items() if name.startswith("worker-") or name == "beat")
    around = sum(per_workflow_task.values()) - workers - per_workflow_task["redis"]
    noop_all = sum(per_noop_task.values())
    least = noop_all - per_noop_task["publisher"] + around
    return {
        "workflow": {"all": round(sum(per_workflow_task.values()), 2), "workers": round(workers, 2),
                     "redis": round(per_workflow_task["redis"], 2), "around_the_workers": round(around, 2)},
        "noop": {"all": round(noop_all, 2), "workers": round(sum(ms for name, ms in per_noop_task.items()
                                                                 if name.startswith("noop-")), 2),
                 "redis": round(per_noop_task["redis"], 2), "publisher": round(per_noop_task["publisher"], 2)},
        "least_per_workflow_task": round(least, 2),
        "bound_tasks_vs_noop_ceiling": round(cores * 1000 / least / ceiling["tasks_per_second"], 3),
    }


@click.command()
@click.option("--orders", type=int, default=200, show_default=True, help="Workflows in the saturation phase.")
@click.option("--paced-seconds", type=float, default=30, show_default=True, help="Length of the half-rate phase.")
@click.option("-c", "--concurrency", default="", help="Per pool, e.g. orders=1,payments=1 (default: the pool's).")
@click.option("--processes", type=int, default=1, show_default=True, help="Worker processes per pool.")
@click.option("--log-level", default="INFO", show_default=True, help="LOG_LEVEL of every process.")
def main(orders: int, paced_seconds: float, concurrency: str, processes: int, log_level: str) -> None:
    scratch = Scratch()
    document = {"machine": report.machine(), "concurrency": parse_concurrency(concurrency), "processes": processes}
    say(f"run {scratch.run_id}: load average {document['machine']['load_average_at_start']}")
    try:
        with interruptible():
            result = run_workflow(scratch, orders, paced_seconds, parse_concurrency(concurrency), processes, log_level)
    except KeyboardInterrupt:
        say("interrupted: stopping everything")
        raise SystemExit(130) from None
    finally:
        with shielded():
            scratch.cleanup()
            say("stopped; scratch databases and Redis keys removed")
    print_report(result)
    say(f"saved {report.save('workflow', {**document, **result})}")


if __name__ == "__main__":
    main()
