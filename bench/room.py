"""
Fan-out to a room of 10,000 in one process: rain_ws on uvicorn next to Node
socket.io, in one run.

Both servers start together, pinned to one core (this script, the load
generator, runs on the other): rain_ws as ``run.py``'s ``rain_ws-uvicorn``
(the echo component, in-memory layer), Node as ``node/server.mjs``. Each
run gives each server in turn (the order alternating from run to run) a
fresh room: 10,000 members connect (bound round-robin to 127.0.0.2-127.0.0.9,
so that runs do not use up one address's ephemeral ports) and ``join``; one
more connection, the sender, in no room, emits ``fanout`` and the server
sends ``news`` to the room, leaving the sender out. A round's latency runs
from just before the sender's emit to the kernel's receive stamp of the last
member's ``news`` (``loadgen.Room``, as ``run.py``'s ``fanout``). p50 and
p99 are over the rounds of every run together.

Usage, from the repository root::

    .venv/bin/python bench/room.py            # about four minutes; writes a section of bench/RESULTS.md
    .venv/bin/python bench/room.py --quick    # a room of 200, few rounds, unpinned; writes nothing

Linux only (``/proc``, ``SO_TIMESTAMPNS``, ``taskset``). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen, run  # noqa: E402
from bench.cluster import SOURCES, open_from  # noqa: E402

RESULTS = run.RESULTS
SECTION_TITLE = "## Fan-out to a room of 10,000"
SERVERS = [run.RAIN_UVICORN, run.NODE]
TARGET = 1.3


async def one_run(
    port: int, pid: int, size: int, rounds: int, warmup: int, gap: float, first: int, profile: list[str] | None = None
) -> dict[str, Any]:
    """
    A fresh room of ``size`` on the server at ``port``: ``warmup + rounds``
    rounds, the latencies of ``rounds``. With ``profile`` (py-spy, output
    file), the server is recorded with py-spy during the rounds.
    """
    tally = loadgen.Tally()
    target = loadgen.Target("127.0.0.1", port, "/socket.io/")
    members = [target.client(tally) for _ in range(size)]
    sender = target.client(tally)
    room = f"room-{size}-{first}"
    latencies: list[float] = []
    reads: list[float] = []
    try:
        pending = iter(enumerate(members))

        async def opener() -> None:
            for number, member in pending:
                await open_from(target, member, SOURCES[(first + number) % len(SOURCES)])
                await member.call("join", room)

        await asyncio.gather(*(opener() for _ in range(min(loadgen.OPEN_CONCURRENCY, size))))
        await loadgen.open_connection(target, sender)
        load = " ".join(f"{value:.2f}" for value in os.getloadavg())
        spy = None
        if profile is not None:
            spy = subprocess.Popen(
                [profile[0], "record", "--pid", str(pid), "--rate", "250", "--nonblocking", *profile[2:],
                 "--format", "raw", "--output", profile[1]],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(1)
        with loadgen.Room(members, tally) as readers:
            meter: loadgen.CpuMeter | None = None
            for number in range(warmup + rounds):
                if number == warmup:
                    meter = loadgen.CpuMeter(pid)
                frame = b"42" + json.dumps(["fanout", room, number, loadgen.NEWS_DATA]).encode()
                stamped, read = readers.round(number, lambda: sender.send(frame), limit=30)
                if number >= warmup:
                    latencies.append(stamped)
                    reads.append(read)
                # Let the server finish the round (and the loop answer the sender's pings).
                await asyncio.sleep(gap)
            assert meter is not None
            window, server_cpu, own_cpu = meter.read()
        if spy is not None:
            # py-spy writes its profile when interrupted, as on Ctrl-C.
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    finally:
        await loadgen.close_all([*members, sender], 30)
    return {
        "latencies": latencies,
        "reads": reads,
        "server_cpu_us_per_delivery": server_cpu * 1e6 / (rounds * size),
        "server_cpu_share": server_cpu / window,
        "load": load,
        "errors": tally.errors,
    }


def ms(value: float) -> str:
    return f"{value * 1e3:.1f}"


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = sorted(value for result in runs for value in result["latencies"])
    reads = sorted(value for result in runs for value in result["reads"])
    return {
        "p50": loadgen.percentile(latencies, 0.5),
        "p99": loadgen.percentile(latencies, 0.99),
        "max": latencies[-1],
        "read_p50": loadgen.percentile(reads, 0.5),
        "run_p50s": [loadgen.percentile(sorted(result["latencies"]), 0.5) for result in runs],
        "cpu": sorted(result["server_cpu_us_per_delivery"] for result in runs)[len(runs) // 2],
        "loads": [result["load"] for result in runs],
        "rounds": len(latencies),
    }


def table(figures: dict[str, dict[str, Any]]) -> str:
    node = figures.get(run.NODE)
    rows = []
    for key, summary in figures.items():
        rows.append([
            run.LABELS[key], str(summary["rounds"]), ms(summary["p50"]), ms(summary["p99"]), ms(summary["max"]),
            f"{summary['p50'] / node['p50']:.2f}" if node else "–", f"{summary['p99'] / node['p99']:.2f}" if node else "–",
            " / ".join(ms(value) for value in summary["run_p50s"]), f"{summary['cpu']:.1f}", ms(summary["read_p50"]),
            "; ".join(summary["loads"]),
        ])  # fmt: skip
    header = [
        "server", "rounds", "p50 ms", "p99 ms", "max ms", "p50 × Node", "p99 × Node", "p50 of each run, ms",
        "server CPU µs/delivery (median run)", "loadgen read p50 ms", "load (1/5/15 min) at each run",
    ]  # fmt: skip
    return run.markdown(header, rows)


def verdict(figures: dict[str, dict[str, Any]]) -> list[str]:
    rain, node = figures.get(run.RAIN_UVICORN), figures.get(run.NODE)
    if not rain or not node:
        return []
    lines = []
    for name in ("p50", "p99"):
        times = rain[name] / node[name]
        lines.append(
            f"- {name} within {TARGET} × Node socket.io's: {ms(rain[name])} ms against {ms(node[name])} ms, "
            f"{times:.2f}x: **{'met' if times <= TARGET else 'missed'}**"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a room of 200, few rounds, unpinned; writes nothing")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=50, help="rounds measured per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between rounds")
    parser.add_argument("--limit", type=float, default=900, help="seconds the whole run may take")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--profile", metavar="DIR", help="record rain_ws with py-spy during its rounds (figures are then not written)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--native", action="store_true", help="with --profile: py-spy --native (C frames too)")
    args = parser.parse_args()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        args.no_write = True
    if args.quick:
        args.size, args.runs, args.rounds, args.warmup, args.no_write = 200, 1, 3, 1, True

    hard = run.raise_open_file_limit()
    if args.size + 100 > hard:
        print(f"a room of {args.size:,} needs more open files than the limit ({hard:,})", file=sys.stderr)
        return 1
    keys = list(SERVERS)
    skipped = {}
    if (reason := run.node_missing()) is not None:
        skipped[run.NODE] = reason
        keys.remove(run.NODE)
    loadgen_prefix, server_prefix = ([], []) if args.quick else run.pinning()
    if loadgen_prefix:
        os.sched_setaffinity(0, {int(loadgen_prefix[-1])})
    started_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_at_start = run.load_average()
    began = time.monotonic()
    results: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    failed: list[str] = []
    with run.start_together([(run.SERVERS_BY_KEY[key], None) for key in keys], server_prefix) as servers:
        by_key = {running.spec.key: running for running in servers}
        first = 0
        for number in range(args.runs):
            order = keys if number % 2 == 0 else list(reversed(keys))
            for key in order:
                running = by_key[key]
                left = args.limit - (time.monotonic() - began)
                profile = None
                if args.profile and key == run.RAIN_UVICORN:
                    output = str(Path(args.profile) / f"rain_ws-room-run{number + 1}.txt")
                    profile = [args.py_spy, output, *(["--native"] if args.native else [])]
                job = one_run(
                    running.port, running.process.pid, args.size, args.rounds, args.warmup, args.gap, first, profile
                )
                try:
                    result = asyncio.run(asyncio.wait_for(job, max(left, 1)))
                except (OSError, loadgen.LoadError, TimeoutError) as error:
                    result = {"errors": [f"{type(error).__name__}: {error}"]}
                first += args.size
                if running.process.poll() is not None:
                    result.setdefault("errors", []).append(f"server exited:\n{running.log_tail()}")
                if result["errors"]:
                    failed.append(f"{run.LABELS[key]}, run {number + 1}: {result['errors'][0]}")
                    print(f"run {number + 1}, {run.LABELS[key]}: {result['errors'][:2]}", file=sys.stderr, flush=True)
                    continue
                results[key].append(result)
                latencies = sorted(result["latencies"])
                print(f"run {number + 1}, {run.LABELS[key]}: p50 {ms(loadgen.percentile(latencies, 0.5))} ms, "
                      f"p99 {ms(loadgen.percentile(latencies, 0.99))} ms, "
                      f"{result['server_cpu_us_per_delivery']:.1f} µs/delivery, load {result['load']}",
                      file=sys.stderr, flush=True)  # fmt: skip
    elapsed = time.monotonic() - began
    figures = {key: summarize(runs) for key, runs in results.items() if runs}
    text = table(figures)
    lines = verdict(figures)
    print(f"\nFan-out to a room of {args.size:,}\n\n{text}\n\n" + "\n".join(lines))
    for key, reason in skipped.items():
        print(f"\n{run.LABELS[key]} skipped: {reason}")
    if args.no_write:
        return 1 if failed else 0
    if failed or skipped:
        print(f"{RESULTS.relative_to(ROOT)} not written: {failed[:1] or skipped}", file=sys.stderr)
        return 1
    socket_io = json.loads((run.NODE_DIR / "node_modules" / "socket.io" / "package.json").read_text())["version"]
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    facts = {
        "run on": started_at,
        "machine": f"{run.machine()['CPU']}, {os.cpu_count()} cores, load average at start {load_at_start}",
        "rain_ws source": f"git {run.source_revision()}",
        "pinning": f"both servers `{' '.join(server_prefix)}`, load generator `{' '.join(loadgen_prefix)}`"
        if server_prefix
        else "none",
        "rounds": f"{args.rounds} per run after {args.warmup} unmeasured, {args.gap:g} s apart, {args.runs} runs, "
        "each server in turn with a fresh room (the order alternating)",
        "uvicorn": " ".join(run.UVICORN_OPTIONS) + " --no-access-log --log-level warning --lifespan off",
        "software": f"uvicorn {importlib.metadata.version('uvicorn')}, node {node_version}, socket.io (npm) {socket_io}",
        "duration": f"{elapsed / 60:.1f} min",
    }
    listed = "\n".join(f"- {name}: {value}" for name, value in facts.items())
    targets = "\n".join(lines)
    section = f"""{SECTION_TITLE}

One process each, from one run of `.venv/bin/python bench/room.py` (see
README.md): rain_ws on uvicorn (in-memory layer, `await
socket.to(room).emit(...)`) and Node socket.io (`socket.to(room).emit(...)`),
both pinned to one core, the load generator on the other. A room of
{args.size:,} members; one more connection, in no room, emits `fanout` and
the server sends `news` to the room. A round's latency runs from just before
that emit to the kernel's receive stamp of the last member's `news`; p50 and
p99 over the rounds of all runs together. *server CPU µs/delivery* is the
server's CPU time over a run's rounds divided by rounds × members.

Targets:

{targets}

{text}

{listed}
"""
    run.write_section(SECTION_TITLE, section)
    print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
