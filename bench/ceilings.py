"""Counting tasks and measuring Celery's no-op ceiling with the system's broker and pool settings."""
from __future__ import annotations

import sys
import time
from collections.abc import Mapping

from common.settings import Settings

from bench import cpu
from bench.system import System, say


def task_totals(settings: Settings, app=None, workers: int | None = None) -> dict[str, int]:
    """Tasks each worker has run since it started, by name, summed over workers (`inspect stats`);
    with `workers`, the answer comes as soon as that many replied instead of after the timeout."""
    from bench.noop import make_app

    app = app or make_app(settings)
    replies = app.control.inspect(timeout=2, limit=workers).stats() or {}
    totals: dict[str, int] = {}
    for stats in replies.values():
        for name, count in stats.get("total", {}).items():
            totals[name] = totals.get(name, 0) + count
    return totals


def celery_ceiling(system: System, concurrency: Mapping[str, int], mix: Mapping[str, int], count: int,
                   processes: int = 1) -> dict:
    """No-op tasks/s: `processes` no-op workers per pool (same pool type and concurrency), `count`
    tasks spread over their queues in the proportions of `mix` (tasks per pool in the workflow run)."""
    from bench.noop import make_app, queue_for
    from workers.pools import POOLS, worker_argv

    specs = []
    for name, pool in POOLS.items():
        for i in range(processes):
            argv = worker_argv(pool, concurrency.get(name), loglevel="WARNING")
            argv[argv.index("--queues") + 1] = queue_for(name)
            argv[argv.index("--hostname") + 1] = node = f"noop-{name}{i}@%h"
            specs.append(system.custom(f"noop-{name}{i}", (sys.executable, "-m", "celery", "-A", "bench.noop", *argv),
                                       node=node))
    supervisor = system.start(specs)
    app = make_app(system.settings)
    try:
        weights = {name: mix.get(name, 0) for name in POOLS} if any(mix.get(n) for n in POOLS) else dict.fromkeys(POOLS, 1)
        total_weight = sum(weights.values())
        plan = {name: round(count * weight / total_weight) for name, weight in weights.items()}
        sent = sum(plan.values())
        say(f"Celery no-op ceiling: {sent} tasks over {', '.join(f'{k} {v}' for k, v in plan.items())}")
        noop = app.tasks["bench.noop"]

        def count_done() -> int:
            return sum(task_totals(system.settings, app, workers=len(specs)).values())

        groups = {child.name: child.process.pid for child in supervisor.children}
        cpu_before, own_before = cpu.snapshot(groups), cpu.own()
        started = time.monotonic()
        publish_plan(noop, plan)
        published = time.monotonic()
        wait_consumed(count_done, sent, started)
        elapsed = time.monotonic() - started
        used = {**cpu.spent(cpu_before, cpu.snapshot(groups)), "publisher": round(cpu.own() - own_before, 2)}
        # The same tasks again with the queues filled first: the workers' rate without the publisher
        # competing for the cores. The workflow's own tasks are published by its processes, so the
        # ratio is taken against the figure above; this one says how much of it is publishing.
        queues = [queue_for(name) for name in plan]
        for queue in queues:
            app.control.cancel_consumer(queue, reply=True, timeout=5, limit=len(specs))
        publish_plan(noop, plan)
        before = count_done()
        resumed = time.monotonic()
        for queue in queues:
            app.control.add_consumer(queue, reply=True, timeout=5, limit=len(specs))
        wait_consumed(count_done, before + sent, resumed)
        prefilled = time.monotonic() - resumed
    finally:
        app.close()
        system.stop(supervisor)
    return {"tasks": sent, "seconds": round(elapsed, 2), "publish_seconds": round(published - started, 2),
            "tasks_per_second": round(sent / elapsed, 1), "plan": plan, "cpu_seconds": used,
            "prefilled": {"seconds": round(prefilled, 2), "tasks_per_second": round(sent / prefilled, 1)}}


def publish_plan(noop, plan: Mapping[str, int]) -> None:
    """Interleaved, as the workflow's tasks arrive, not one queue after the other."""
    from bench.noop import queue_for

    for i in range(max(plan.values())):
        for name, n in plan.items():
            if i < n:
                noop.apply_async(queue=queue_for(name))


def wait_consumed(count_done, target: int, started: float) -> None:
    while count_done() < target:
        if time.monotonic() - started > 120 + target / 10:
            raise TimeoutError("the no-op workers did not finish")
        time.sleep(0.05)
