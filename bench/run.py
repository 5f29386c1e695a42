"""
Run the benchmark: server CPU per Socket.IO event, rain_ws against its references.

Every server acks an ``echo`` event with its own arguments on the main
namespace of ``/socket.io/``. The servers start together; then, for each run,
each server in turn gets a fresh load from ``loadgen.py`` (N connections doing
emit-with-ack in a loop, a warm-up, then a measured window). Alternating the
servers run by run spreads any drift in the machine's load over all of them.
The server is pinned to one core and the load generator to another. The
table reports the median of the runs for each figure, and ratios of server
CPU per ack against python-socketio and Node socket.io from the same run.

Usage, from the repository root::

    .venv/bin/python bench/run.py            # full run; writes bench/RESULTS.md
    .venv/bin/python bench/run.py --quick    # smoke run: 2 connections, 1 s, no pinning

Linux only (``/proc``, ``taskset``). See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_DIR = BENCH / "node"
RESULTS = BENCH / "RESULTS.md"

#: uvicorn's event loop and WebSocket implementation, named so that the run
#: does not depend on which optional packages happen to be installed.
UVICORN_OPTIONS = ["--loop", "asyncio", "--ws", "websockets-sansio"]

PYTHON_SOCKETIO = "socketio-uvicorn"
NODE = "node"


@dataclass(frozen=True)
class ServerSpec:
    """One server of the benchmark and how to start it on a port."""

    key: str
    label: str
    kind: str  # "uvicorn", "daphne" or "node"
    target: str  # ASGI application, or the Node script

    def command(self, port: int) -> list[str]:
        if self.kind == "uvicorn":
            return [
                sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", "--log-level", "warning", "--lifespan", "off",
                *UVICORN_OPTIONS, self.target,
            ]  # fmt: skip
        if self.kind == "daphne":
            # Verbosity 0: warning-level logging and no access log.
            return [sys.executable, "-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(port), self.target]
        return ["node", str(NODE_DIR / self.target), str(port)]


SERVERS = [
    ServerSpec("rain_ws-uvicorn", "rain_ws on uvicorn", "uvicorn", "bench.servers.rain_asgi:application"),
    ServerSpec("rain_ws-daphne", "rain_ws on daphne", "daphne", "bench.servers.rain_asgi:application"),
    ServerSpec(
        "channels-uvicorn", "bare Channels consumer on uvicorn", "uvicorn", "bench.servers.bare_channels:application"
    ),
    ServerSpec(PYTHON_SOCKETIO, "python-socketio on uvicorn", "uvicorn", "bench.servers.socketio_app:application"),
    ServerSpec(NODE, "Node socket.io", "node", "server.mjs"),
]

#: The figures taken from each run, and the median of them reported.
FIGURES = [
    "server_cpu_us_per_ack",
    "acks_per_s",
    "p50_ms",
    "p99_ms",
    "server_cpu_share",
    "loadgen_cpu_us_per_ack",
    "loadgen_cpu_share",
]


@dataclass
class Running:
    """A started server and the runs measured on it."""

    spec: ServerSpec
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    runs: list[dict[str, Any]] = field(default_factory=list)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_missing() -> str | None:
    """Why the Node server cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        return "socket.io is not installed: run `npm ci --prefix bench/node`"
    return None


def pinning() -> tuple[list[str], list[str]]:
    """taskset prefixes for the load generator and the server: one core each."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("taskset") is None:
        print("warning: fewer than 2 cores or no taskset: running unpinned", file=sys.stderr)
        return [], []
    return ["taskset", "-c", str(cores[0])], ["taskset", "-c", str(cores[1])]


@contextmanager
def start(spec: ServerSpec, prefix: list[str]) -> Iterator[Running]:
    """Start a server, wait until it listens, and stop it (its PID only) on exit."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{spec.key}-", suffix=".log", delete=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "bench.servers.settings"}
    # taskset execs the server, so the PID is the server's own.
    process = subprocess.Popen(
        [*prefix, *spec.command(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    running = Running(spec, process, port, Path(log.name))
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{spec.label} exited at start-up:\n{running.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{spec.label} did not listen within 30 s") from None
                time.sleep(0.05)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        os.unlink(log.name)


def load(running: Running, prefix: list[str], connections: int, warmup: float, duration: float) -> dict[str, Any]:
    """One run of the load generator against a started server."""
    limit = warmup + duration + 20
    command = [
        *prefix, sys.executable, str(BENCH / "loadgen.py"),
        "--url", f"ws://127.0.0.1:{running.port}/socket.io/",
        "--connections", str(connections), "--warmup", str(warmup), "--duration", str(duration),
        "--server-pid", str(running.process.pid), "--timeout", str(limit),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit + 10)
    except subprocess.TimeoutExpired:
        return {"errors": [f"load generator still running after {limit + 10:.0f} s"]}
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"errors": [f"load generator exited {done.returncode}: {done.stderr.strip()[-1000:]}"]}
    if running.process.poll() is not None:
        result.setdefault("errors", []).append(f"server exited:\n{running.log_tail()}")
    return result


def medians(runs: list[dict[str, Any]]) -> dict[str, float] | None:
    good = [run for run in runs if not run.get("errors") and run.get("acks")]
    if not good:
        return None
    return {name: statistics.median(run[name] for run in good) for name in FIGURES}


def ratio(value: float, reference: dict[str, float] | None) -> str:
    if reference is None:
        return "–"
    return f"{value / reference['server_cpu_us_per_ack']:.2f}"


def table(servers: list[Running], skipped: dict[str, str]) -> str:
    """The results as a markdown table: one row per server, medians of its runs."""
    summary = {running.spec.key: medians(running.runs) for running in servers}
    psio, node = summary.get(PYTHON_SOCKETIO), summary.get(NODE)
    lines = [
        "| server | CPU µs/ack | × python-socketio | × Node socket.io | acks/s | p50 ms | p99 ms "
        "| server CPU | loadgen µs/ack | loadgen CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for running in servers:
        row = summary[running.spec.key]
        if row is None:
            errors = "; ".join(e for run in running.runs for e in run.get("errors", []))[:300]
            lines.append(f"| {running.spec.label} | failed: {errors} |" + " |" * 8)
            continue
        cpu = row["server_cpu_us_per_ack"]
        lines.append(
            f"| {running.spec.label} | {cpu:.1f} | {ratio(cpu, psio)} | {ratio(cpu, node)} "
            f"| {row['acks_per_s']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
            f"| {row['server_cpu_share']:.0%} | {row['loadgen_cpu_us_per_ack']:.1f} "
            f"| {row['loadgen_cpu_share']:.0%} |"
        )
    for key, reason in skipped.items():
        label = next(spec.label for spec in SERVERS if spec.key == key)
        lines.append(f"| {label} | skipped: {reason} |" + " |" * 8)
    return "\n".join(lines)


def runs_table(servers: list[Running]) -> str:
    """Server CPU µs per ack of every run, to show the spread behind the medians."""
    count = max(len(running.runs) for running in servers)
    lines = [
        "| server | " + " | ".join(f"run {i + 1}" for i in range(count)) + " |",
        "|---|" + "---:|" * count,
    ]
    for running in servers:
        cells = [
            "error" if run.get("errors") else f"{run['server_cpu_us_per_ack']:.1f}" for run in running.runs
        ]
        lines.append(f"| {running.spec.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as loadavg:
        load_average = " ".join(loadavg.read().split()[:3])
    return {
        "CPU": model,
        "cores (nproc)": str(len(os.sched_getaffinity(0))),
        "kernel": platform.release(),
        "load average at start": load_average,
    }


def source_revision() -> str:
    """The commit rain_ws was measured at, and whether its code differed from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "rain_ws"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head} with uncommitted changes in rain_ws/" if changed else head


def versions() -> dict[str, str]:
    found = {"Python": platform.python_version(), "rain_ws source": f"git {source_revision()}"}
    for name in (
        "rain-ws", "Django", "channels", "asgiref", "daphne", "Twisted", "autobahn",
        "uvicorn", "websockets", "python-socketio", "python-engineio",
    ):  # fmt: skip
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    if node_missing() is None:
        found["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        package = json.loads((NODE_DIR / "node_modules" / "socket.io" / "package.json").read_text())
        found["socket.io (npm)"] = package["version"]
    return found


def report(servers: list[Running], settings: dict[str, Any], started: str) -> str:
    facts = "\n".join(f"- {name}: {value}" for name, value in {**machine(), **settings}.items())
    software = "\n".join(f"- {name}: {version}" for name, version in versions().items())
    return f"""# Benchmark results

Server CPU per Socket.IO event: each server acks an `echo` event with its own
arguments; N connections emit with an ack in a loop. How the figures are taken
is in [README.md](README.md). Run on {started} with `.venv/bin/python bench/run.py`.

## Results

Medians of the runs. **CPU µs/ack** is the server process's user+system CPU
time over the measured window divided by the acks received in it; the ratios
divide it by python-socketio's and Node socket.io's figure from the same run.
**server CPU** and **loadgen CPU** are the share of one core each process used
during the window: a server well below 100% was not saturated (it waited for
the load generator, or other work shared its core), and its acks/s and
latencies say less about the server than its CPU µs/ack does.

{table(servers, {})}

Server CPU µs/ack of each run:

{runs_table(servers)}

## Machine and settings

{facts}

## Software

{software}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 connections, a 1 s window, one run, unpinned; writes nothing")
    parser.add_argument(
        "--servers",
        default=",".join(spec.key for spec in SERVERS),
        help="comma-separated subset of: " + ", ".join(spec.key for spec in SERVERS),
    )
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds of load before each window")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds in each measured window")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    known = {spec.key: spec for spec in SERVERS}
    wanted = [key.strip() for key in args.servers.split(",") if key.strip()]
    unknown = [key for key in wanted if key not in known]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)}")
    if args.quick:
        args.connections, args.warmup, args.duration, args.runs = 2, 0.2, 1.0, 1
        loadgen_prefix: list[str] = []
        server_prefix: list[str] = []
    else:
        loadgen_prefix, server_prefix = pinning()

    skipped: dict[str, str] = {}
    if NODE in wanted and (reason := node_missing()) is not None:
        skipped[NODE] = reason
        wanted.remove(NODE)

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with ExitStack() as stack:
        servers = [stack.enter_context(start(known[key], server_prefix)) for key in wanted]
        for number in range(args.runs):
            for running in servers:
                result = load(running, loadgen_prefix, args.connections, args.warmup, args.duration)
                running.runs.append(result)
                if result.get("errors"):
                    status = "; ".join(result["errors"])
                else:
                    status = f"{result['server_cpu_us_per_ack']:.1f} µs/ack, {result['acks_per_s']:,.0f} acks/s"
                print(f"run {number + 1}/{args.runs} {running.spec.label}: {status}", file=sys.stderr, flush=True)

    print(table(servers, skipped))
    settings = {
        "connections": args.connections,
        "warm-up per run": f"{args.warmup} s",
        "measured window per run": f"{args.duration} s",
        "runs per server": args.runs,
        "pinning": f"server `{' '.join(server_prefix)}`, load generator `{' '.join(loadgen_prefix)}`"
        if server_prefix
        else "none",
        "uvicorn": " ".join(UVICORN_OPTIONS) + " --no-access-log --log-level warning --lifespan off",
        "daphne": "-v 0 (warning-level logging, no access log)",
    }
    failed = any(medians(running.runs) is None for running in servers)
    if not args.quick and not skipped and len(servers) == len(SERVERS) and not failed:
        RESULTS.write_text(report(servers, settings, started))
        print(f"\nwrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    elif not args.quick:
        print(f"\n{RESULTS.relative_to(ROOT)} not written: it needs every server, all successful", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
