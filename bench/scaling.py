"""Scaling benchmark: the workflow benchmark (`bench.workflow`) once per worker configuration, to
show how throughput grows with the workers and where it stops growing.

    python -m bench.scaling [--orders 150] [--paced-seconds 15] [--configs c1,c2,c4,p2] [--profile-config c2]

1. Configurations: `cN` runs one worker per pool at concurrency N for every pool (`-c orders=N,
   payments=N,risk=N,notifications=N`); `pN` runs N worker processes per pool at the pools' default
   concurrency. Each runs `bench.workflow.run_workflow` from scratch (databases, Redis prefix,
   processes): saturation, half rate, no-op ceiling. The ceiling runs the same workers as the
   configuration: per pool, as many no-op worker processes at the same concurrency.
2. One table across configurations: complete workflows/s, tasks/s, tasks per workflow, no-op
   tasks/s and the ratio, half-rate callback → paid and event → inbox p50/p99, CPU s per completed
   order, and CPU seconds by process group during saturation (pN's worker processes summed per
   pool) with the busiest group in cores: which process saturates.
3. Profile (`--profile`, on when py-spy is installed): during the saturation phase of
   `--profile-config` (its figures carry py-spy's cost; the table marks it), every service and
   worker pool under py-spy (`bench.profile`, `--gil`); collapsed stacks in
   logs/bench/scaling-<process>.txt, the hot functions per process, and a bottleneck verdict: the
   process group with the most samples (Python CPU) per completed workflow and its top functions.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import click

from bench import cpu, profile, report
from bench.scratch import Scratch
from bench.system import System, interruptible, say, shielded
from bench.workflow import run_workflow


def parse_configs(value: str) -> dict[str, dict]:
    """`c2` → concurrency 2 for every pool, one process each; `p2` → two processes per pool, defaults."""
    from workers.pools import POOLS

    configs = {}
    for name in (part.strip() for part in value.split(",") if part.strip()):
        match = re.fullmatch(r"([cp])([1-9][0-9]*)", name)
        if not match:
            raise click.BadParameter(f"{name!r}: expected cN (concurrency N) or pN (N processes per pool)")
        n = int(match.group(2))
        configs[name] = ({"concurrency": dict.fromkeys(POOLS, n), "processes": 1} if match.group(1) == "c"
                         else {"concurrency": {}, "processes": n})
    return configs


def group_of(name: str) -> str:
    """A pool's several worker processes (`worker-orders0`, `worker-orders1`) are one group."""
    match = re.fullmatch(r"(worker-[a-z_]+?)[0-9]+", name)
    return match.group(1) if match else name


def by_group(cpu_seconds: dict[str, float]) -> dict[str, float]:
    groups: dict[str, float] = {}
    for name, seconds in cpu_seconds.items():
        groups[group_of(name)] = round(groups.get(group_of(name), 0.0) + seconds, 2)
    return groups


@contextmanager
def profiling(system: System, record: dict, rate: int) -> Iterator[None]:
    """py-spy on every service and worker pool (not beat) while the block runs; `record` gets the
    files ({process: path}) and the CPU seconds py-spy itself used."""
    files: dict[str, Path] = record.setdefault("files", {})
    profilers, before = [], cpu.own_children()
    for child in system.children():
        if child.name == "beat":
            continue
        out = profile.keep_path(f"scaling-{child.name}")
        out.unlink(missing_ok=True)  # a failed recording must not read as the previous run's
        profilers.append(profile.Profiler(child.process.pid, out, rate=rate))
        files[child.name] = out
    say(f"profiling {', '.join(files)} with py-spy at {rate} Hz")
    time.sleep(1.0)  # py-spy attaches (reads each process's symbols) before the timed part starts
    try:
        yield
    finally:
        with ThreadPoolExecutor(len(profilers) or 1) as pool:
            list(pool.map(profile.Profiler.stop, profilers))
        record["pyspy_cpu_seconds"] = round(cpu.own_children() - before, 2)


def analyse(record: dict, run: dict, rate: int) -> dict:
    """Samples per completed workflow by process and by group (a pool's processes together), their
    hot functions, and the bottleneck: the group with the most samples per workflow."""
    workflows = run["saturation"]["workflows"]
    files = {name: path for name, path in record.get("files", {}).items() if path.exists()}
    processes = {name: {"file": str(path), "samples": profile.samples(path)} for name, path in files.items()}
    members: dict[str, list[str]] = {}
    for name in processes:
        members.setdefault(group_of(name), []).append(name)
    groups = {}
    for group, names in members.items():
        n = sum(processes[name]["samples"] for name in names)
        cpu_s = run["cpu_seconds_by_group"].get(group, 0.0)
        groups[group] = {"processes": names, "samples": n, "samples_per_workflow": round(n / workflows, 1),
                         "cpu_ms_per_workflow": round(1000 * cpu_s / workflows, 1),
                         "hot": profile.hot([files[name] for name in names])}
    total = sum(entry["samples"] for entry in groups.values())
    found = {"config": None, "rate_hz": rate, "workflows": workflows, "pyspy_cpu_seconds": record.get("pyspy_cpu_seconds"),
             "processes": processes, "groups": groups, "bottleneck": None}
    if total:
        group = max(groups, key=lambda key: groups[key]["samples"])
        entry, by_cpu = groups[group], max(groups, key=lambda key: groups[key]["cpu_ms_per_workflow"])
        found["bottleneck"] = {
            "group": group, "samples_per_workflow": entry["samples_per_workflow"],
            "share_of_samples": round(entry["samples"] / total, 3),
            "gil_ms_per_workflow": round(1000 * entry["samples_per_workflow"] / rate, 1),
            "cpu_ms_per_workflow": entry["cpu_ms_per_workflow"], "most_cpu_per_workflow": by_cpu,
            "top_function": (entry["hot"]["deepest"] or [None])[0], "top_self": (entry["hot"]["self"] or [None])[0]}
    return found


def _pair(half: dict, name: str) -> str:
    entry = half.get(name) or {}
    return f"{_s(entry.get('p50_s'))} / {_s(entry.get('p99_s'))}"


def _s(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_report(configs: dict[str, dict], profiled: str | None) -> None:
    names = list(configs)
    ok = {name: run for name, run in configs.items() if "error" not in run}
    groups = list(dict.fromkeys(group for run in ok.values() for group in run["cpu_seconds_by_group"]))

    def row(label: str, cell) -> tuple:
        return (label, *(cell(configs[name]) if name in ok else "failed" for name in names))

    first = next(iter(ok.values()), None)
    rows = [
        row("worker processes per pool × concurrency", lambda r: f"{r['processes']} × {r['concurrency_label']}"),
        row("profiled (py-spy during saturation)", lambda r: "yes" if r["profiled"] else "no"),
        row("complete workflows/s", lambda r: r["saturation"]["workflows_per_second"]),
        row(f"  × of {names[0]}" if first else "  ×", lambda r: round(r["saturation"]["workflows_per_second"]
                                                            / first["saturation"]["workflows_per_second"], 2)),
        row("workflow tasks/s", lambda r: r["saturation"]["tasks_per_second"]),
        row("tasks per workflow", lambda r: r["saturation"]["tasks_per_workflow"]),
        row("Celery no-op tasks/s (same workers)", lambda r: r["ceiling"]["tasks_per_second"]),
        row("tasks/s ÷ no-op ceiling", lambda r: r["ratios"]["tasks_vs_noop_ceiling"]),
        row("half rate (workflows/s)", lambda r: r["half_rate"]["rate"]),
        row("  callback→paid p50 / p99 s", lambda r: _pair(r["half_rate"], "callback_to_paid")),
        row("  event→inbox p50 / p99 s", lambda r: _pair(r["half_rate"], "event_to_inbox")),
        row("CPU s per completed order", lambda r: r["saturation"]["cpu_seconds_per_order"]["system"]),
        row("  + MariaDB and Redis", lambda r: r["saturation"]["cpu_seconds_per_order"]["with_mariadb_redis"]),
        row("saturation seconds", lambda r: r["saturation"]["seconds"]),
        *(row(f"CPU s: {group}", lambda r, g=group: r["cpu_seconds_by_group"].get(g, "-")) for group in groups),
        row("busiest group (cores used)", lambda r: f"{r['busiest']['group']} ({r['busiest']['cores']:.2f})"),
        row(f"all processes (cores used, of {os.cpu_count()})", lambda r: r["cores_used"]),
    ]
    print()
    print(report.table(("measure", *names), rows))
    print()
    if ok:
        print("complete workflows/s:", " → ".join(f"{name} {run['saturation']['workflows_per_second']}"
                                                 for name, run in ok.items()))
    for name, run in configs.items():
        if "error" in run:
            print(f"{name} failed: {run['error']}")
    if profiled:
        print(f"{profiled} was profiled during saturation: its figures include py-spy's cost.")


def print_profile(found: dict) -> None:
    print(f"\nprofile of {found['config']}'s saturation phase ({found['workflows']} workflows, py-spy --gil at "
          f"{found['rate_hz']} Hz, py-spy itself {found['pyspy_cpu_seconds']} CPU s):")
    print(report.table(("process group", "processes", "samples", "per workflow", "CPU ms per workflow"), [
        (group, len(entry["processes"]), entry["samples"], entry["samples_per_workflow"], entry["cpu_ms_per_workflow"])
        for group, entry in sorted(found["groups"].items(), key=lambda item: -item[1]["samples"])]))
    profile.print_profiles({group: entry["hot"] for group, entry in found["groups"].items() if entry["samples"]})
    neck = found["bottleneck"]
    print()
    if neck is None:
        print("bottleneck: no samples recorded")
        return
    function = "{} ({:.0%} of its samples, with what it calls)".format(*neck["top_function"]) \
        if neck["top_function"] else "none of ours"
    cpu_note = "" if neck["most_cpu_per_workflow"] == neck["group"] else \
        f"; by measured CPU per workflow it is {neck['most_cpu_per_workflow']}"
    print(f"bottleneck: {neck['group']}, the most py-spy samples per completed workflow ({neck['samples_per_workflow']}, "
          f"{neck['share_of_samples']:.0%} of all: ≈{neck['gil_ms_per_workflow']:.0f} ms holding the GIL, "
          f"{neck['cpu_ms_per_workflow']:.0f} ms CPU measured); top function {function}{cpu_note}")


def run_config(name: str, config: dict, orders: int, paced_seconds: float, log_level: str,
               record: dict | None, rate: int) -> dict:
    """One configuration on scratch resources of its own; `record` given: profiled during saturation."""
    scratch = Scratch()
    say(f"=== {name}: {config['processes']} process(es) per pool, concurrency "
        f"{config['concurrency'] or 'pool defaults'} (run {scratch.run_id}, load {report.load_average()})")
    started = time.monotonic()
    load = report.load_average()
    around = (lambda system: profiling(system, record, rate)) if record is not None else None
    try:
        result = run_workflow(scratch, orders, paced_seconds, config["concurrency"], config["processes"], log_level,
                              around_saturation=around)
    finally:
        with shielded():
            scratch.cleanup()
    sat = result["saturation"]
    groups = by_group(sat["cpu_seconds"])
    busiest = max(groups, key=groups.get)
    return {**config, "concurrency_label": ",".join(map(str, sorted(set(config["concurrency"].values())))) or "default",
            "profiled": record is not None, "load_average_at_start": load,
            "wall_seconds": round(time.monotonic() - started, 1), **result, "cpu_seconds_by_group": groups,
            "busiest": {"group": busiest, "cpu_seconds": groups[busiest],
                        "cores": round(groups[busiest] / sat["seconds"], 2)},
            "cores_used": round(sum(groups.values()) / sat["seconds"], 2)}


@click.command()
@click.option("--orders", type=int, default=150, show_default=True, help="Workflows in each saturation phase.")
@click.option("--paced-seconds", type=float, default=15, show_default=True, help="Length of each half-rate phase.")
@click.option("--configs", default="c1,c2,c4,p2", show_default=True,
              help="cN: concurrency N for every pool; pN: N processes per pool at default concurrency.")
@click.option("--profile/--no-profile", "with_profile", default=None,
              help="py-spy the services and pools during one saturation phase [default: when py-spy is installed].")
@click.option("--profile-config", default="c2", show_default=True,
              help="The configuration to profile (the last one run when it is not among --configs).")
@click.option("--profile-rate", type=int, default=50, show_default=True, help="py-spy samples per second.")
@click.option("--log-level", default="INFO", show_default=True, help="LOG_LEVEL of every process.")
def main(orders: int, paced_seconds: float, configs: str, with_profile: bool | None, profile_config: str,
         profile_rate: int, log_level: str) -> None:
    plan = parse_configs(configs)
    if not plan:
        raise click.BadParameter("no configuration given", param_hint="--configs")
    if with_profile is None:
        with_profile = profile.available() is not None
    elif with_profile and not profile.available():
        raise click.UsageError("--profile: py-spy is not installed (pip install -r bench/requirements.txt)")
    profiled = (profile_config if profile_config in plan else list(plan)[-1]) if with_profile else None
    if profiled and profiled != profile_config:
        say(f"{profile_config} is not among --configs: profiling {profiled}")
    document = {"machine": report.machine(), "orders": orders, "paced_seconds": paced_seconds,
                "configs": {}, "profile": None}
    say(f"scaling: {', '.join(plan)}; load average {document['machine']['load_average_at_start']}")
    results: dict[str, dict] = document["configs"]
    record: dict = {}
    started = time.monotonic()
    try:
        with interruptible():
            for name, config in plan.items():
                try:
                    results[name] = run_config(name, config, orders, paced_seconds, log_level,
                                               record if name == profiled else None, profile_rate)
                except Exception as exc:  # noqa: BLE001 - one configuration's failure is reported, the others go on
                    say(f"{name} failed: {exc!r}")
                    results[name] = {**config, "error": repr(exc)}
                say(f"{name} done in {time.monotonic() - started:.0f}s so far")
    except KeyboardInterrupt:
        say("interrupted: stopping everything")
        raise SystemExit(130) from None
    if profiled and "error" not in results.get(profiled, {"error": ""}):
        document["profile"] = {**analyse(record, results[profiled], profile_rate), "config": profiled}
    document["wall_seconds"] = round(time.monotonic() - started, 1)
    print_report(results, profiled)
    if document["profile"]:
        print_profile(document["profile"])
    say(f"all configurations in {document['wall_seconds']:.0f}s")
    say(f"saved {report.save('scaling', document)}")


if __name__ == "__main__":
    main()
