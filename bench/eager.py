"""
Server CPU per ack of rain_ws on uvicorn on one or more Python interpreters,
with socket workers scheduled on the event loop and started eagerly.

The echo scenario of ``bench/run.py`` (``loadgen.py --scenario echo``:
connections emit with an ack in a loop; 1.5 s warm-up, 5 s window), with 1, 5
and 50 connections (``--connections``), against
``bench/servers/rain_eager_asgi.py`` run by each interpreter given with
``--python``: on Python 3.11 once (its workers are always scheduled), on 3.12
and later twice, scheduled and eager (see ``bench/servers/rain_eager_asgi.py``). Every
configuration's server starts at once and stays up; each run gives every
configuration in turn a fresh load generator, for each number of
connections, in an order rotated from run to run, so that a change in the
machine's load falls on all of them. The load generator always runs on this
interpreter.

Usage, from the repository root::

    .venv/bin/python bench/eager.py --python .venv/bin/python --python /path/to/python3.13
    .venv/bin/python bench/eager.py --quick --python /path/to/python3.13   # one short run; writes nothing

Each interpreter needs the project importable (``pip install -e .``), uvicorn
0.35 or later and websockets 13 or later. Replaces (or appends) the "Python
3.12+ and eager tasks" section of bench/RESULTS.md unless ``--quick`` or
``--no-write``. Linux only (``/proc``, ``taskset``); loopback only; servers are
stopped by their PID.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench import run as bench_run  # noqa: E402
from bench.loadgen import process_cpu_seconds  # noqa: E402

RESULTS = bench_run.RESULTS
SECTION_TITLE = "## Python 3.12+ and eager tasks"
APPLICATION = "bench.servers.rain_eager_asgi:application"
PROBE = (
    "import importlib.metadata as m, json, platform, sys; "
    "print(json.dumps({'python': platform.python_version(), 'implementation': platform.python_implementation(), "
    "'eager': sys.version_info >= (3, 12), "
    "'versions': {n: m.version(n) for n in ('Django', 'channels', 'uvicorn', 'websockets')}}))"
)


@dataclass(frozen=True)
class InterpreterSpec(bench_run.ServerSpec):
    """``bench/run.py``'s rain_ws-on-uvicorn server, run by another interpreter."""

    python: str = sys.executable

    def command(self, port: int) -> list[str]:
        command = super().command(port)
        command[0] = self.python
        return command


@dataclass(frozen=True)
class Configuration:
    key: str
    label: str
    python: str
    version: str
    eager: bool

    def spec(self) -> InterpreterSpec:
        return InterpreterSpec(self.key, self.label, "uvicorn", APPLICATION, python=self.python)

    def environment(self) -> dict[str, str]:
        return {"BENCH_EAGER_START": "1" if self.eager else "0"}


def probe(python: str) -> dict[str, Any]:
    """The interpreter's version, whether it has eager tasks, and its server packages' versions."""
    done = subprocess.run(
        [python, "-c", PROBE], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{python} cannot run the server: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def cpu_ticks() -> dict[str, tuple[int, int]]:
    """Busy and total clock ticks of every core so far (``/proc/stat``)."""
    ticks = {}
    with open("/proc/stat") as stat:
        for line in stat:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *fields = line.split()
            values = [int(value) for value in fields]
            idle = values[3] + values[4]  # idle + iowait
            ticks[name] = (sum(values[:8]) - idle, sum(values[:8]))
    return ticks


def run_one(
    running: bench_run.Running, loadgen_prefix: list[str], load: bench_run.Load, core: str | None
) -> dict[str, Any]:
    """One echo run, with the load average at its start and the other work on the server's core."""
    load_average = float(bench_run.load_average().split()[0])
    ticks_before = cpu_ticks()
    server_before = process_cpu_seconds(running.process.pid)
    result = bench_run.run_load(running, loadgen_prefix, load)
    server_spent = process_cpu_seconds(running.process.pid) - server_before
    ticks_after = cpu_ticks()
    result["load_average"] = load_average
    if core is not None and core in ticks_before:
        busy = ticks_after[core][0] - ticks_before[core][0]
        total = ticks_after[core][1] - ticks_before[core][1]
        if total > 0:
            # Share of the server's core that went to anything but the server
            # over the whole run (warm-up and connecting included).
            tick = 1 / os.sysconf("SC_CLK_TCK")
            result["other_on_server_core"] = max(0.0, (busy * tick - server_spent) / (total * tick))
    return result


def section(
    configurations: list[Configuration], counts: list[int], results: dict[str, list[dict[str, Any]]],
    facts: dict[str, str],
) -> str:  # fmt: skip
    def figures(key: str) -> list[float]:
        return [run["server_cpu_us_per_ack"] for run in results[key] if not run.get("errors")]

    medians = {key: statistics.median(values) for key in results if (values := figures(key))}
    baseline = configurations[0]
    scheduled = {conf.python: conf.key for conf in configurations if not conf.eager}
    runs = max(len(values) for values in results.values())
    header = [
        "connections", "Python", "workers", "CPU µs/ack, median", "range", *(f"run {i + 1}" for i in range(runs)),
        f"× {baseline.label}", "eager × scheduled", "acks/s", "p50 ms", "p99 ms", "server CPU",
        "loadgen µs/ack", "other work on the server's core", "load average",
    ]  # fmt: skip
    rows = []
    for count in counts:
        for conf in configurations:
            key = result_key(count, conf.key)
            workers = "eager" if conf.eager else "scheduled"
            ok = [run for run in results[key] if not run.get("errors")]
            if not ok or len(ok) != len(results[key]):
                errors = "; ".join(e for run in results[key] for e in run.get("errors", []))
                rows.append([str(count), conf.version, workers, "failed: " + errors[:200].replace("|", "/")])
                continue
            values = figures(key)
            cpu = medians[key]

            def m(name: str) -> float:
                return statistics.median(run[name] for run in ok)

            others = [run["other_on_server_core"] for run in ok if "other_on_server_core" in run]
            loads = [run["load_average"] for run in ok]
            same_python = medians.get(result_key(count, scheduled.get(conf.python, "")))
            rows.append([
                str(count), conf.version, workers, f"{cpu:.1f}", f"{min(values):.1f}–{max(values):.1f}",
                *(f"{value:.1f}" for value in values), *([""] * (runs - len(values))),
                bench_run.times(cpu, medians.get(result_key(count, baseline.key))),
                bench_run.times(cpu, same_python) if conf.eager else "–",
                f"{m('acks_per_s'):,.0f}", f"{m('p50_ms'):.2f}", f"{m('p99_ms'):.2f}", f"{m('server_cpu_share'):.0%}",
                f"{m('loadgen_cpu_us_per_ack'):.1f}", f"{min(others):.0%}–{max(others):.0%}" if others else "–",
                f"{min(loads):.2f}–{max(loads):.2f}",
            ])  # fmt: skip
    notes = "\n".join(f"- {name}: {value}" for name, value in facts.items())
    return f"""{SECTION_TITLE}

Server CPU per ack of rain_ws on uvicorn (the echo scenario of `bench/run.py`)
on each interpreter, with each socket's worker task scheduled on the event
loop (*scheduled*: rain_ws's default, and all Python 3.11 can do) and started
eagerly (*eager*: `bench/servers/rain_eager_asgi.py`, Python 3.12 and later:
`asyncio.Task(..., eager_start=True)`, whose first step runs inside
`receive_event`, so that an `echo` is acked as its frame is read, without its
task being scheduled). From `.venv/bin/python bench/eager.py` (see
README.md), with {spoken(counts)} connections emitting at once: one
event in flight per connection. Every configuration's
server was up for the whole run; each run gave each configuration in turn a
fresh load generator for each number of connections, the order rotated from
run to run. *loadgen µs/ack* is the load generator's own CPU per ack. *Other
work on the server's core* is the share of that core's time, over each run,
that went to anything but the server (`/proc/stat`): the machine's other
work. The load average is the 1-minute one at each run's start.

{bench_run.markdown(header, rows)}

{notes}
"""


def spoken(counts: list[int]) -> str:
    """1, 5 and 50."""
    words = [f"{count:,}" for count in counts]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def result_key(connections: int, configuration: str) -> str:
    return f"{connections} connections, {configuration}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--python", action="append", default=[],
        help="an interpreter to run the server with (repeat for more; default: this one)",
    )  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="runs of every configuration")
    parser.add_argument(
        "--connections", default="1,5,50", help="comma-separated numbers of connections, each a load of its own"
    )
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds of load before each window")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds in each measured window")
    parser.add_argument("--quick", action="store_true", help="2 connections, one short run, unpinned; writes nothing")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    args = parser.parse_args()
    counts = [int(count) for count in args.connections.split(",") if count.strip()]
    if args.quick:
        counts, args.warmup, args.duration, args.runs = [2], 0.2, 1.0, 1
        loadgen_prefix: list[str] = []
        server_prefix: list[str] = []
        core = None
    else:
        loadgen_prefix, server_prefix = bench_run.pinning()
        core = f"cpu{server_prefix[-1]}" if server_prefix else None
    bench_run.raise_open_file_limit()

    configurations: list[Configuration] = []
    software = []
    for python in args.python or [sys.executable]:
        found = probe(python)
        version = f"{found['implementation']} {found['python']}"
        software.append(f"{version} (`{python}`): " + ", ".join(f"{n} {v}" for n, v in found["versions"].items()))
        for eager in (False, True) if found["eager"] else (False,):
            key = f"{found['python']}-{'eager' if eager else 'scheduled'}"
            label = f"{version}, {'eager' if eager else 'scheduled'}"
            configurations.append(Configuration(key, label, python, version, eager))
    if len({conf.key for conf in configurations}) != len(configurations):
        parser.error("each --python must be a different Python version")

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    loads = {
        count: bench_run.Load(
            "echo",
            ["--connections", str(count), "--warmup", str(args.warmup), "--duration", str(args.duration)],
            args.warmup + args.duration + 20,
        )
        for count in counts
    }
    results: dict[str, list[dict[str, Any]]] = {
        result_key(count, conf.key): [] for count in counts for conf in configurations
    }
    began = time.monotonic()
    servers_wanted = [(conf.spec(), conf.environment()) for conf in configurations]
    with bench_run.start_together(servers_wanted, server_prefix) as running:
        servers = dict(zip((conf.key for conf in configurations), running))
        for number in range(args.runs):
            shift = number % len(configurations)
            for count in counts:
                for conf in configurations[shift:] + configurations[:shift]:
                    result = run_one(servers[conf.key], loadgen_prefix, loads[count], core)
                    results[result_key(count, conf.key)].append(result)
                    label = f"{conf.label}, {count} connections, run {number + 1}"
                    print(bench_run.progress("echo", label, result), file=sys.stderr, flush=True)
    elapsed = time.monotonic() - began

    facts = {
        "run on": f"{started}, {elapsed / 60:.1f} min",
        "rain_ws source": f"git {bench_run.source_revision()}",
        "machine": f"{bench_run.machine()['CPU']}, {len(os.sched_getaffinity(0))} cores",
        "pinning": f"servers `{' '.join(server_prefix)}`, load generator `{' '.join(loadgen_prefix)}` "
        f"(Python {sys.version.split()[0]})"
        if server_prefix
        else "none",
        "load": f"{', '.join(map(str, counts))} connections, {args.warmup} s warm-up, {args.duration} s window, "
        f"{args.runs} runs per configuration and number of connections",
        "uvicorn": " ".join(bench_run.UVICORN_OPTIONS) + " --no-access-log --log-level warning --lifespan off",
        "software": "; ".join(software),
    }
    text = section(configurations, counts, results, facts)
    print(text)
    failed = any(run.get("errors") for runs in results.values() for run in runs)
    if args.quick or args.no_write:
        return 1 if failed else 0
    if failed:
        print(f"{RESULTS.relative_to(ROOT)} not written: a run failed", file=sys.stderr)
        return 1
    bench_run.write_section(SECTION_TITLE, text)
    print(f"wrote the {SECTION_TITLE[3:]} section of {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
