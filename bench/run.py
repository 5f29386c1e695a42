"""
Run the benchmark: rain_ws against the Socket.IO servers people would
otherwise use, on six scenarios, all in one run.

- ``idle``: server memory per idle connection (5,000 connections), next to a
  raw ASGI application on the same ASGI server.
- ``connect``: new connections per second, and server CPU per connect.
- ``echo``: server CPU per Socket.IO event (emit with an ack, in a loop).
- ``fanout``: time from one emit to its receipt by every member of a room of
  1, 100 and 1,000 sockets.
- ``hold``: 10,000 connections on one process: memory, and whether every
  connection is still pinged.
- ``polling``: server CPU per Socket.IO event over HTTP long-polling (emit
  with an ack, in a loop; ``polling.py``), on one rain_ws process and across
  two through Redis (every request relayed to the session's owner), next to
  python-socketio and Node socket.io; and a WebSocket upgraded on a process
  other than the session's owner (relayed) next to one upgraded on the owner.

The servers of the first four start together (fresh, so the idle scenario
runs first and sees them as they start); for each run, each server in turn
gets a fresh load generator (``loadgen.py``) with new connections, so that a
drift in the machine's load falls on all of them. ``hold`` then starts each of
its servers afresh, alone, and ``polling`` starts its own servers (and a
redis-server) afresh, together. Servers are pinned to one core and the load
generator to another. The tables give medians of the runs and ratios against
python-socketio and Node socket.io from the same run.

Usage, from the repository root::

    .venv/bin/python bench/run.py            # full run; writes bench/RESULTS.md
    .venv/bin/python bench/run.py --quick    # smoke run: every scenario, tiny, unpinned
    .venv/bin/python bench/run.py --scenarios polling   # only the long-polling section of bench/RESULTS.md
    .venv/bin/python bench/run.py --scenarios recovery  # bench/recovery.py: its section of bench/RESULTS.md

Linux only (``/proc``, ``taskset``). See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_DIR = BENCH / "node"
RESULTS = BENCH / "RESULTS.md"

#: uvicorn's event loop and WebSocket implementation, named so that the run
#: does not depend on which optional packages happen to be installed.
UVICORN_OPTIONS = ["--loop", "asyncio", "--ws", "websockets-sansio"]
#: uvicorn's HTTP parser for the long-polling servers, named for the same
#: reason: httptools (what ``uvicorn[standard]`` installs) when it is
#: installed, else uvicorn's pure-Python h11.
HTTP_IMPLEMENTATION = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"

RAIN_UVICORN = "rain_ws-uvicorn"
RAIN_DAPHNE = "rain_ws-daphne"
CHANNELS = "channels-uvicorn"
PYTHON_SOCKETIO = "socketio-uvicorn"
NODE = "node"
RAW_UVICORN = "raw-uvicorn"
RAW_DAPHNE = "raw-daphne"


@dataclass(frozen=True)
class ServerSpec:
    """One server of the benchmark and how to start it on a port."""

    key: str
    label: str
    kind: str  # "uvicorn", "daphne" or "node"
    target: str  # ASGI application, or the Node script
    extra: tuple[str, ...] = ()  # more options (uvicorn), or arguments after the port (node)

    def command(self, port: int) -> list[str]:
        if self.kind == "uvicorn":
            return [
                sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", "--log-level", "warning", "--lifespan", "off",
                *UVICORN_OPTIONS, *self.extra, self.target,
            ]  # fmt: skip
        if self.kind == "daphne":
            # Verbosity 0: warning-level logging and no access log.
            return [sys.executable, "-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(port), self.target]
        return ["node", str(NODE_DIR / self.target), str(port), *self.extra]


SERVERS = [
    ServerSpec(RAIN_UVICORN, "rain_ws on uvicorn", "uvicorn", "bench.servers.rain_asgi:application"),
    ServerSpec(RAIN_DAPHNE, "rain_ws on daphne", "daphne", "bench.servers.rain_asgi:application"),
    ServerSpec(CHANNELS, "bare Channels consumer on uvicorn", "uvicorn", "bench.servers.bare_channels:application"),
    ServerSpec(PYTHON_SOCKETIO, "python-socketio on uvicorn", "uvicorn", "bench.servers.socketio_app:application"),
    ServerSpec(NODE, "Node socket.io", "node", "server.mjs"),
    ServerSpec(RAW_UVICORN, "raw ASGI on uvicorn", "uvicorn", "bench.servers.raw_asgi:application"),
    ServerSpec(RAW_DAPHNE, "raw ASGI on daphne", "daphne", "bench.servers.raw_asgi:application"),
]
LABELS = {spec.key: spec.label for spec in SERVERS}
SERVERS_BY_KEY = {spec.key: spec for spec in SERVERS}
#: The raw ASGI reference on the same ASGI server as each rain_ws server.
RAW_FOR = {RAIN_UVICORN: RAW_UVICORN, RAIN_DAPHNE: RAW_DAPHNE}

SOCKETIO_SERVERS = [RAIN_UVICORN, RAIN_DAPHNE, CHANNELS, PYTHON_SOCKETIO, NODE]
ROOM_SIZES = (1, 100, 1000)
QUICK_ROOM_SIZES = (1, 5)
#: Connections held by ``hold``; its servers.
HOLD_CONNECTIONS = 10_000
HOLD_SERVERS = [RAIN_UVICORN, PYTHON_SOCKETIO]

# -- long-polling ----------------------------------------------------------------

#: The long-polling servers: rain_ws as in the other scenarios; python-socketio
#: and Node socket.io with their default transports (long-polling, with the
#: upgrade to WebSocket offered, as rain_ws offers it).
#: A parked GET that python-socketio keeps after its client closed the
#: session would hold uvicorn's shutdown for a ping interval and timeout:
#: the servers of this scenario wait at most 2 s for open requests.
_POLLING_HTTP = ("--http", HTTP_IMPLEMENTATION, "--timeout-graceful-shutdown", "2")
RAIN_POLLING = ServerSpec(RAIN_UVICORN, LABELS[RAIN_UVICORN], "uvicorn", "bench.servers.rain_asgi:application", _POLLING_HTTP)
SOCKETIO_POLLING = ServerSpec(
    PYTHON_SOCKETIO, LABELS[PYTHON_SOCKETIO], "uvicorn", "bench.servers.socketio_app:polling_application", _POLLING_HTTP
)
NODE_POLLING = ServerSpec(NODE, LABELS[NODE], "node", "server.mjs", ("polling",))
#: The channel layer of the two-process deployment, and its settings module.
RELAY_LAYER = "RedisPubSubChannelLayer"
REDIS_SETTINGS = "bench.servers.settings_redis"


@dataclass(frozen=True)
class PollingDeployment:
    """Server processes started together for the ``polling`` scenario."""

    key: str
    spec: ServerSpec
    processes: int = 1
    layer: str | None = None  # a Redis layer class for rain_ws, or None for its default settings


POLLING_DEPLOYMENTS = {
    deployment.key: deployment
    for deployment in (
        PollingDeployment("rain-1", RAIN_POLLING),
        PollingDeployment("rain-2", RAIN_POLLING, 2, RELAY_LAYER),
        PollingDeployment("socketio", SOCKETIO_POLLING),
        PollingDeployment("node", NODE_POLLING),
    )
}


@dataclass(frozen=True)
class PollingRow:
    """One row of the ``polling`` table: a deployment, and where each client's requests go."""

    key: str
    label: str
    server: str  # the --servers key that selects the row
    deployment: str
    mode: str  # "polling": events over long-polling; "upgrade": over the WebSocket it upgrades to
    handshake: int = 0  # the deployment's process that makes each session (its owner)
    requests: int = 0  # the process every later request, or the upgrade's WebSocket, goes to
    compare_to: str | None = None  # the row this one's relay is measured against

    @property
    def relayed(self) -> bool:
        return self.handshake != self.requests


POLLING_ROWS = [
    PollingRow("rain-1", "rain_ws on uvicorn, 1 process", RAIN_UVICORN, "rain-1", "polling"),
    PollingRow("rain-2-owner", "rain_ws, 2 processes on Redis, requests to the owner", RAIN_UVICORN, "rain-2", "polling"),
    PollingRow(
        "rain-2-relay", "rain_ws, 2 processes on Redis, every request relayed", RAIN_UVICORN, "rain-2", "polling",
        0, 1, "rain-2-owner",
    ),
    PollingRow("socketio", "python-socketio on uvicorn", PYTHON_SOCKETIO, "socketio", "polling"),
    PollingRow("node", "Node socket.io", NODE, "node", "polling"),
    PollingRow(
        "ws-owner", "rain_ws, 2 processes on Redis, upgraded to WebSocket on the owner", RAIN_UVICORN, "rain-2",
        "upgrade",
    ),
    PollingRow(
        "ws-relay", "rain_ws, 2 processes on Redis, upgraded to WebSocket on the other process (relayed)",
        RAIN_UVICORN, "rain-2", "upgrade", 0, 1, "ws-owner",
    ),
]  # fmt: skip
POLLING_ROWS_BY_KEY = {row.key: row for row in POLLING_ROWS}
#: Rows ``--quick`` leaves out: they take the same paths as others it keeps.
QUICK_LEFT_OUT = {"rain-2-owner", "ws-owner"}
#: ``--quick``'s window for ``polling``, in seconds.
QUICK_POLLING_WINDOW = 0.5
POLLING_SERVERS = [RAIN_UVICORN, PYTHON_SOCKETIO, NODE]


@dataclass(frozen=True)
class Load:
    """One load generator run: its arguments and how long it may take."""

    scenario: str
    arguments: list[str]
    limit: float  # seconds


@dataclass(frozen=True)
class Scenario:
    """A scenario: its servers, and the load generator runs each one gets."""

    name: str
    servers: list[str]
    loads: Callable[[argparse.Namespace], list[Load]]


def _echo_loads(args: argparse.Namespace) -> list[Load]:
    arguments = [
        "--connections", str(args.connections), "--warmup", str(args.warmup), "--duration", str(args.duration),
    ]  # fmt: skip
    return [Load("echo", arguments, args.warmup + args.duration + 20)] * args.runs


def _connect_loads(args: argparse.Namespace) -> list[Load]:
    count, concurrency, warmup = (20, 5, 5) if args.quick else (args.connects, 50, 200)
    arguments = ["--count", str(count), "--concurrency", str(concurrency), "--warmup-count", str(warmup)]
    return [Load("connect", arguments, 90)] * args.runs


def _idle_loads(args: argparse.Namespace) -> list[Load]:
    connections, settle = (20, 1) if args.quick else (args.idle_connections, 20)
    return [Load("hold", ["--connections", str(connections), "--settle-limit", str(settle)], 120)]


def _fanout_loads(args: argparse.Namespace) -> list[Load]:
    sizes, rounds, warmup = (QUICK_ROOM_SIZES, 3, 1) if args.quick else (ROOM_SIZES, args.rounds, 3)
    return [
        Load("fanout", ["--room-size", str(size), "--rounds", str(rounds), "--warmup-rounds", str(warmup)], 120)
        for size in sizes
    ]


def _hold_loads(args: argparse.Namespace) -> list[Load]:
    if args.quick:
        # Without waiting for pings: that takes a ping interval, 25 s.
        return [Load("hold", ["--connections", "20", "--settle-limit", "1"], 60)]
    arguments = ["--connections", str(HOLD_CONNECTIONS), "--settle-limit", "20", "--ping-wait"]
    return [Load("hold", arguments, 200)]


def _polling_loads(args: argparse.Namespace) -> list[Load]:
    """One load per run; each row of the table gets it in turn (see run_polling)."""
    arguments = [
        "--connections", str(args.polling_connections), "--warmup", str(args.warmup),
        "--duration", str(args.polling_duration),
    ]  # fmt: skip
    return [Load("polling", arguments, args.warmup + args.polling_duration + 30)] * args.runs


#: In the order they run. ``idle`` comes first, while the servers are fresh.
SCENARIOS = [
    Scenario("idle", [*SOCKETIO_SERVERS, RAW_UVICORN, RAW_DAPHNE], _idle_loads),
    Scenario("connect", [*SOCKETIO_SERVERS, RAW_UVICORN, RAW_DAPHNE], _connect_loads),
    Scenario("echo", SOCKETIO_SERVERS, _echo_loads),
    Scenario("fanout", SOCKETIO_SERVERS, _fanout_loads),
    Scenario("hold", HOLD_SERVERS, _hold_loads),
    Scenario("polling", POLLING_SERVERS, _polling_loads),
]
SCENARIO_NAMES = [scenario.name for scenario in SCENARIOS]
#: Scenarios with a script of their own, run only when ``--scenarios`` names
#: them; each prints its tables and writes its own section of RESULTS.md.
SEPARATE_SCENARIOS = {"recovery": "recovery.py"}
SCENARIOS_BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


@dataclass
class Running:
    """A started server."""

    spec: ServerSpec
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]


#: Every load generator result: scenario -> server key -> results, in run order.
Results = dict[str, dict[str, list[dict[str, Any]]]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_listening(
    process: subprocess.Popen[bytes], port: int, label: str, log_tail: Callable[[], str]
) -> None:
    """Wait until a server just started accepts on ``port``; fail with its log if it exits or takes 30 s."""
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{label} exited at start-up:\n{log_tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label} did not listen within 30 s") from None
            time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process this benchmark started, by its PID."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def node_missing() -> str | None:
    """Why the Node server cannot run here, or None; installs socket.io from the lockfile when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        if shutil.which("npm") is None:
            return "socket.io is not installed and there is no npm: run `npm ci --prefix bench/node`"
        installed = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if installed.returncode != 0:
            return f"`npm ci --prefix bench/node` failed: {installed.stderr.strip()[-300:]}"
    return None


def pinning() -> tuple[list[str], list[str]]:
    """taskset prefixes for the load generator and the server: one core each."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("taskset") is None:
        print("warning: fewer than 2 cores or no taskset: running unpinned", file=sys.stderr)
        return [], []
    return ["taskset", "-c", str(cores[0])], ["taskset", "-c", str(cores[1])]


def raise_open_file_limit() -> int:
    """
    Raise this process's open-file limit to the hard limit, for the servers
    and load generators it starts (they inherit it); return the limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@contextmanager
def start(spec: ServerSpec, prefix: list[str], environment: dict[str, str] | None = None) -> Iterator[Running]:
    """Start a server, wait until it listens, and stop it (its PID only) on exit."""
    with start_together([(spec, environment)], prefix) as (running,):
        yield running


@contextmanager
def start_together(
    servers: list[tuple[ServerSpec, dict[str, str] | None]], prefix: list[str]
) -> Iterator[list[Running]]:
    """
    Start servers (each with its environment added to the default one) all
    at once, wait until each listens, and stop them all (their PIDs only) on exit.
    """
    started: list[tuple[Running, Any]] = []
    try:
        for spec, environment in servers:
            port = free_port()
            log = tempfile.NamedTemporaryFile(prefix=f"bench-{spec.key}-", suffix=".log", delete=False)
            env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "bench.servers.settings"}
            env.update(environment or {})
            # taskset execs the server, so the PID is the server's own.
            process = subprocess.Popen(
                [*prefix, *spec.command(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            started.append((Running(spec, process, port, Path(log.name)), log))
        for running, _ in started:
            wait_until_listening(running.process, running.port, running.spec.label, running.log_tail)
        yield [running for running, _ in started]
    finally:
        for running, log in started:
            stop(running.process)
            log.close()
            os.unlink(log.name)


def run_load(running: Running, prefix: list[str], load: Load) -> dict[str, Any]:
    """One run of the load generator against a started server."""
    command = [
        *prefix, sys.executable, str(BENCH / "loadgen.py"), "--scenario", load.scenario,
        "--url", f"ws://127.0.0.1:{running.port}/socket.io/",
        "--server-pid", str(running.process.pid), "--timeout", str(load.limit), *load.arguments,
    ]  # fmt: skip
    return run_json(command, load.limit, [running])


def run_json(command: list[str], limit: float, servers: list[Running]) -> dict[str, Any]:
    """Run a load generator; its last line of output is its result, as JSON."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit + 10)
    except subprocess.TimeoutExpired:
        return {"errors": [f"load generator still running after {limit + 10:.0f} s"]}
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"errors": [f"load generator exited {done.returncode}: {done.stderr.strip()[-1000:]}"]}
    for running in servers:
        if running.process.poll() is not None:
            result.setdefault("errors", []).append(f"server exited:\n{running.log_tail()}")
    return result


# -- the long-polling scenario ---------------------------------------------------


def redis_missing() -> str | None:
    """Why redis-server cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed: run `apt-get install -y --no-install-recommends redis-server`"
    return None


@contextmanager
def redis_server(prefix: list[str]) -> Iterator[Running]:
    """A redis-server on a free port that keeps nothing on disk; stopped by its PID on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        log_path = Path(directory) / "redis.log"
        command = [
            *prefix, "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", directory,
            "--save", "", "--appendonly", "no", "--daemonize", "no",
        ]  # fmt: skip
        with log_path.open("wb") as log:
            # taskset execs redis-server, so the PID is its own.
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        spec = ServerSpec("redis-server", "redis-server", "redis", "redis-server")
        running = Running(spec, process, port, log_path)
        try:
            wait_until_listening(process, port, "redis-server", running.log_tail)
            yield running
        finally:
            stop(process)


def load_average() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def run_polling(
    args: argparse.Namespace, wanted: list[str], loadgen_prefix: list[str], server_prefix: list[str],
    skipped: dict[str, str], facts: dict[str, str],
) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """
    The ``polling`` scenario: its deployments started afresh, together (with
    a redis-server for the two-process one); for each run, every row in turn
    gets a fresh load generator (``polling.py``). Results by row key.
    """
    rows = [row for row in POLLING_ROWS if row.server in wanted and not (args.quick and row.key in QUICK_LEFT_OUT)]
    results: dict[str, list[dict[str, Any]]] = {row.key: [] for row in rows}
    if (reason := redis_missing()) is not None:
        for row in rows:
            if POLLING_DEPLOYMENTS[row.deployment].layer is not None:
                skipped[row.label] = reason
                results[row.key].append({"skipped": reason})
        rows = [row for row in rows if not results[row.key]]
    facts["load average at the start"] = load_average()
    began = time.monotonic()
    with ExitStack() as stack:
        needed = [key for key in POLLING_DEPLOYMENTS if any(row.deployment == key for row in rows)]
        redis = None
        if any(POLLING_DEPLOYMENTS[key].layer is not None for key in needed):
            redis = stack.enter_context(redis_server(server_prefix))
        servers: list[tuple[ServerSpec, dict[str, str] | None]] = []
        for key in needed:
            deployment = POLLING_DEPLOYMENTS[key]
            environment = None
            if deployment.layer is not None:
                assert redis is not None
                environment = {
                    "DJANGO_SETTINGS_MODULE": REDIS_SETTINGS, "BENCH_LAYER": deployment.layer,
                    "BENCH_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
                }  # fmt: skip
            servers += [(deployment.spec, environment)] * deployment.processes
        everything = iter(stack.enter_context(start_together(servers, server_prefix)))
        deployed = {
            key: [next(everything) for _ in range(POLLING_DEPLOYMENTS[key].processes)] for key in needed
        }
        for number, load in enumerate(_polling_loads(args)):
            for row in rows:
                processes = deployed[row.deployment]
                uses_redis = POLLING_DEPLOYMENTS[row.deployment].layer is not None
                command = [
                    *loadgen_prefix, sys.executable, str(BENCH / "polling.py"), "--mode", row.mode,
                    "--handshake-url", f"http://127.0.0.1:{processes[row.handshake].port}/socket.io/",
                    "--url", f"http://127.0.0.1:{processes[row.requests].port}/socket.io/",
                    "--server-pids", ",".join(str(running.process.pid) for running in processes),
                    *(["--redis-pid", str(redis.process.pid)] if uses_redis and redis is not None else []),
                    "--timeout", str(load.limit), *load.arguments,
                ]  # fmt: skip
                involved = [*processes, *([redis] if uses_redis and redis is not None else [])]
                result = run_json(command, load.limit, involved)
                if result.get("errors"):
                    # An error answer (a 500, say) is explained in the server's log.
                    logs = [running.log_tail()[-600:].strip() for running in involved if running.log_tail().strip()]
                    result["errors"] += [f"log of a server: {log}" for log in logs]
                results[row.key].append(result)
                print(progress("polling", f"{row.label} {number + 1}", result), file=sys.stderr, flush=True)
    facts["load average at the end"] = load_average()
    facts["duration"] = f"{time.monotonic() - began:.0f} s"
    return results


def progress(scenario: str, label: str, result: dict[str, Any]) -> str:
    """One line on stderr per load generator run."""
    if result.get("errors"):
        return f"{scenario} {label}: " + "; ".join(result["errors"])[:500]
    if "not_measured" in result:
        return f"{scenario} {label}: not measured: {result['not_measured']}"
    summary = {
        "echo": lambda: f"{result['server_cpu_us_per_ack']:.1f} µs/ack, {result['acks_per_s']:,.0f} acks/s",
        "connect": lambda: f"{result['connects_per_s']:,.0f} connects/s, "
        f"{result['server_cpu_us_per_connect']:.0f} µs/connect",
        "idle": lambda: f"{result['kib_per_connection']:.1f} KiB/connection",
        "fanout": lambda: f"room of {result['room_size']}: p50 {result['p50_ms']:.2f} ms",
        "hold": lambda: f"{result['kib_per_connection']:.1f} KiB/connection, "
        f"{result.get('pinged', '?')}/{result['connections']:,} pinged",
        "polling": lambda: f"{result['server_cpu_us_per_ack']:.1f} µs/ack, {result['acks_per_s']:,.0f} acks/s, "
        f"load {result['load_average']:.2f}",
    }[scenario]
    return f"{scenario} {label}: {summary()}"


# -- tables ------------------------------------------------------------------


def good(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [run for run in runs if not run.get("errors")]


def median(runs: list[dict[str, Any]], name: str) -> float | None:
    """The median of one figure over the successful runs, None if there are none."""
    values = [run[name] for run in good(runs)]
    return statistics.median(values) if values else None


def times(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or reference == 0:
        return "–"
    return f"{value / reference:.2f}"


def failure(runs: list[dict[str, Any]]) -> str:
    errors = "; ".join(error for run in runs for error in run.get("errors", []))
    return "failed: " + errors.replace("\n", " ").replace("|", "/")[:300]


def markdown(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row + [""] * (len(header) - len(row))) + " |" for row in rows]
    return "\n".join(lines)


def table_rows(
    results: dict[str, list[dict[str, Any]]], row: Callable[[str, list[dict[str, Any]]], list[str]]
) -> list[list[str]]:
    """One row per server, or a failure row for a server with no successful run."""
    rows = []
    for key, runs in results.items():
        if good(runs) and all(not run.get("errors") for run in runs):
            rows.append([LABELS[key], *row(key, runs)])
        else:
            rows.append([LABELS[key], failure(runs)])
    return rows


def echo_table(results: dict[str, list[dict[str, Any]]]) -> str:
    psio = median(results.get(PYTHON_SOCKETIO, []), "server_cpu_us_per_ack")
    node = median(results.get(NODE, []), "server_cpu_us_per_ack")

    def row(key: str, runs: list[dict[str, Any]]) -> list[str]:
        def m(name: str) -> float:
            return median(runs, name)  # type: ignore[return-value]

        cpu = m("server_cpu_us_per_ack")
        return [
            f"{cpu:.1f}", times(cpu, psio), times(cpu, node), f"{m('acks_per_s'):,.0f}",
            f"{m('p50_ms'):.2f}", f"{m('p99_ms'):.2f}", f"{m('server_cpu_share'):.0%}",
            f"{m('loadgen_cpu_us_per_ack'):.1f}", f"{m('loadgen_cpu_share'):.0%}",
        ]  # fmt: skip

    header = [
        "server", "CPU µs/ack", "× python-socketio", "× Node socket.io", "acks/s", "p50 ms", "p99 ms",
        "server CPU", "loadgen µs/ack", "loadgen CPU",
    ]  # fmt: skip
    return markdown(header, table_rows(results, row))


def echo_runs_table(results: dict[str, list[dict[str, Any]]]) -> str:
    """Server CPU µs per ack of every run, to show the spread behind the medians."""
    count = max(len(runs) for runs in results.values())
    rows = [
        [LABELS[key]]
        + ["error" if run.get("errors") else f"{run['server_cpu_us_per_ack']:.1f}" for run in runs]
        for key, runs in results.items()
    ]
    return markdown(["server", *(f"run {i + 1}" for i in range(count))], rows)


def connect_table(results: dict[str, list[dict[str, Any]]]) -> str:
    psio_rate = median(results.get(PYTHON_SOCKETIO, []), "connects_per_s")
    psio_cpu = median(results.get(PYTHON_SOCKETIO, []), "server_cpu_us_per_connect")
    node_cpu = median(results.get(NODE, []), "server_cpu_us_per_connect")

    def row(key: str, runs: list[dict[str, Any]]) -> list[str]:
        def m(name: str) -> float:
            return median(runs, name)  # type: ignore[return-value]

        rate, cpu = m("connects_per_s"), m("server_cpu_us_per_connect")
        return [
            f"{cpu:.0f}", f"{1e6 / cpu:,.0f}" if cpu else "–", times(psio_cpu, cpu), times(node_cpu, cpu),
            f"{rate:,.0f}", times(rate, psio_rate), f"{m('p50_ms'):.1f}", f"{m('p99_ms'):.1f}",
            f"{m('server_cpu_share'):.0%}", f"{m('loadgen_cpu_us_per_connect'):.0f}", f"{m('loadgen_cpu_share'):.0%}",
        ]  # fmt: skip

    header = [
        "server", "CPU µs/connect", "connects per CPU-second", "× python-socketio", "× Node socket.io",
        "measured connects/s", "× python-socketio", "p50 ms", "p99 ms", "server CPU", "loadgen µs/connect",
        "loadgen CPU",
    ]  # fmt: skip
    return markdown(header, table_rows(results, row))


def idle_table(results: dict[str, list[dict[str, Any]]]) -> str:
    def kib(key: str) -> float | None:
        return median(results.get(key, []), "kib_per_connection")

    def row(key: str, runs: list[dict[str, Any]]) -> list[str]:
        run = good(runs)[0]
        value = run["kib_per_connection"]
        raw = times(value, kib(RAW_FOR[key])) if key in RAW_FOR else "–"
        return [
            f"{value:.1f}", times(value, kib(PYTHON_SOCKETIO)), raw, times(value, kib(NODE)),
            f"{run['rss_before_kib'] / 1024:.1f}", f"{run['rss_after_kib'] / 1024:.1f}", f"{run['open_s']:.1f}",
        ]  # fmt: skip

    header = [
        "server", "KiB/connection", "× python-socketio", "× raw ASGI, same server", "× Node socket.io",
        "RSS before MiB", "RSS after MiB", "open s",
    ]  # fmt: skip
    return markdown(header, table_rows(results, row))


def fanout_table(results: dict[str, list[dict[str, Any]]]) -> str:
    sizes = sorted({run["room_size"] for runs in results.values() for run in good(runs)})
    largest = sizes[-1] if sizes else 0

    def of(runs: list[dict[str, Any]], size: int) -> dict[str, Any] | None:
        return next((run for run in good(runs) if run["room_size"] == size), None)

    def p50(key: str) -> float | None:
        run = of(results.get(key, []), largest)
        return run["p50_ms"] if run else None

    def row(key: str, runs: list[dict[str, Any]]) -> list[str]:
        big = of(runs, largest)
        cells = [f"{of(runs, size)['p50_ms']:.2f}" for size in sizes]  # type: ignore[index]
        return [
            *cells, f"{big['p90_ms']:.2f}", times(big["p50_ms"], p50(PYTHON_SOCKETIO)), times(big["p50_ms"], p50(NODE)),
            f"{big['server_cpu_us_per_delivery']:.1f}", f"{big['read_p50_ms']:.2f}",
        ]  # fmt: skip

    header = [
        "server", *(f"room of {size:,}: p50 ms" for size in sizes), f"{largest:,}: p90 ms",
        f"{largest:,}: × python-socketio", f"{largest:,}: × Node socket.io",
        f"{largest:,}: server CPU µs/delivery", f"{largest:,}: loadgen read p50 ms",
    ]  # fmt: skip
    return markdown(header, table_rows(results, row))


def hold_table(results: dict[str, list[dict[str, Any]]]) -> str:
    def row(key: str, runs: list[dict[str, Any]]) -> list[str]:
        run = good(runs)[0]
        pings = (
            [f"{run['pinged']:,}", f"{run['ping_late_p50_ms']:.0f}", f"{run['ping_late_max_ms']:.0f}"]
            if "pinged" in run
            else ["not checked"] * 3
        )
        return [
            f"{run['connections']:,}", f"{run['open_s']:.1f}", f"{run['rss_before_kib'] / 1024:.1f}",
            f"{run['rss_after_kib'] / 1024:.1f}", f"{run['kib_per_connection']:.1f}", *pings, f"{run['lost']:,}",
        ]  # fmt: skip

    header = [
        "server", "connections", "open s", "RSS before MiB", "RSS after MiB", "KiB/connection", "pinged",
        "ping late p50 ms", "ping late max ms", "lost",
    ]  # fmt: skip
    return markdown(header, table_rows(results, row))


def polling_table(results: dict[str, list[dict[str, Any]]]) -> str:
    """One row per configuration of the ``polling`` scenario (``results`` by row key)."""

    def cpu(key: str) -> float | None:
        return median(results.get(key, []), "server_cpu_us_per_ack")

    def row(key: str, runs: list[dict[str, Any]]) -> list[str]:
        config = POLLING_ROWS_BY_KEY[key]
        if runs and all("skipped" in run for run in runs):
            return [config.label, "skipped: " + runs[0]["skipped"]]
        if not good(runs) or any(run.get("errors") for run in runs):
            return [config.label, failure(runs)]
        if any("not_measured" in run for run in runs):
            reason = next(run["not_measured"] for run in runs if "not_measured" in run)
            return [config.label, "not measured: " + reason.replace("\n", " ").replace("|", "/")[:300]]

        def m(name: str) -> float:
            return median(runs, name)  # type: ignore[return-value]

        value = m("server_cpu_us_per_ack")
        redis = m("redis_cpu_us_per_ack") if runs[0].get("redis_cpu_us_per_ack") is not None else None
        loads = [run["load_average"] for run in runs]
        return [
            config.label, f"{value:.1f}", times(value, cpu("socketio")), times(value, cpu("node")),
            times(value, cpu(config.compare_to)) if config.compare_to else "–",
            f"{redis:.1f}" if redis is not None else "–", f"{m('acks_per_s'):,.0f}", f"{m('p50_ms'):.2f}",
            f"{m('p99_ms'):.2f}", f"{m('server_cpu_share'):.0%}", f"{m('loadgen_cpu_us_per_ack'):.1f}",
            f"{m('loadgen_cpu_share'):.0%}", f"{min(loads):.2f}–{max(loads):.2f}",
        ]  # fmt: skip

    header = [
        "configuration", "server CPU µs/ack", "× python-socketio", "× Node socket.io", "relayed: × the owner's",
        "redis-server CPU µs/ack", "acks/s", "p50 ms", "p99 ms", "server CPU", "loadgen µs/ack", "loadgen CPU",
        "load average (1 min)",
    ]  # fmt: skip
    return markdown(header, [row(key, runs) for key, runs in results.items()])


def polling_runs_table(results: dict[str, list[dict[str, Any]]]) -> str:
    """Server CPU µs per ack and the load average of every run, to show the spread behind the medians."""

    def cell(run: dict[str, Any]) -> str:
        if run.get("errors"):
            return "error"
        if "server_cpu_us_per_ack" not in run:
            return "–"
        return f"{run['server_cpu_us_per_ack']:.1f} (load {run['load_average']:.2f})"

    count = max((len(runs) for runs in results.values()), default=0)
    rows = [[POLLING_ROWS_BY_KEY[key].label] + [cell(run) for run in runs] for key, runs in results.items()]
    return markdown(["configuration", *(f"run {i + 1}" for i in range(count))], rows)


def polling_ratio(results: Results) -> float | None:
    """rain_ws's CPU per ack over long-polling on one process, over python-socketio's."""
    runs = results.get("polling", {})
    value, base = median(runs.get("rain-1", []), "server_cpu_us_per_ack"), median(
        runs.get("socketio", []), "server_cpu_us_per_ack"
    )
    return value / base if value is not None and base else None


TABLES: dict[str, tuple[str, Callable[[dict[str, list[dict[str, Any]]]], str]]] = {
    "connect": ("Connect rate", connect_table),
    "echo": ("Emit with ack: CPU per event", echo_table),
    "idle": ("Idle memory", idle_table),
    "fanout": ("Fan-out to a room", fanout_table),
    "hold": ("Connections held on one process", hold_table),
    "polling": ("Long-polling", polling_table),
}
#: The long-polling target: rain_ws on one process against python-socketio.
POLLING_TARGET = 0.6


# -- targets -------------------------------------------------------------------


def targets_table(results: Results) -> str:
    """rain_ws's figures against its targets, on uvicorn and on daphne."""

    def ratio(scenario: str, key: str, reference: str, name: str) -> float | None:
        """``key``'s median of ``name`` over ``reference``'s."""
        runs = results.get(scenario, {})
        value, base = median(runs.get(key, []), name), median(runs.get(reference, []), name)
        return value / base if value is not None and base else None

    def fanout_ratio(key: str) -> float | None:
        runs = results.get("fanout", {})
        largest = max(ROOM_SIZES)

        def p50(server: str) -> float | None:
            found = [run["p50_ms"] for run in good(runs.get(server, [])) if run["room_size"] == largest]
            return found[0] if found else None

        value, base = p50(key), p50(NODE)
        return value / base if value is not None and base else None

    targets = [
        ("server CPU per ack", "≤ 0.5 × python-socketio", 0.5, True,
         lambda key: ratio("echo", key, PYTHON_SOCKETIO, "server_cpu_us_per_ack")),
        ("idle memory per connection", "≤ 0.6 × python-socketio", 0.6, True,
         lambda key: ratio("idle", key, PYTHON_SOCKETIO, "kib_per_connection")),
        ("idle memory per connection", "≤ 1.15 × raw ASGI on the same server", 1.15, True,
         lambda key: ratio("idle", key, RAW_FOR[key], "kib_per_connection")),
        ("fan-out to 1,000 in one process, p50", "≤ 1.5 × Node socket.io", 1.5, True, fanout_ratio),
        ("connect rate: connects per CPU-second", "≥ 1.3 × python-socketio", 1.3, False,
         lambda key: ratio("connect", PYTHON_SOCKETIO, key, "server_cpu_us_per_connect")),
        ("connect rate: measured connects/s", "≥ 1.3 × python-socketio", 1.3, False,
         lambda key: ratio("connect", key, PYTHON_SOCKETIO, "connects_per_s")),
        ("long-polling: server CPU per ack, 1 process", f"≤ {POLLING_TARGET} × python-socketio", POLLING_TARGET,
         True, lambda key: polling_ratio(results) if key == RAIN_UVICORN else None),
    ]  # fmt: skip
    rows = []
    for figure, goal, bound, at_most, measure in targets:
        cells = [figure, goal]
        for key in (RAIN_UVICORN, RAIN_DAPHNE):
            value = measure(key)
            if value is None:
                cells.append("–")
            else:
                met = value <= bound if at_most else value >= bound
                cells.append(f"{value:.2f} ({'met' if met else 'missed'})")
        rows.append(cells)
    return markdown(["figure", "target", LABELS[RAIN_UVICORN], LABELS[RAIN_DAPHNE]], rows)


# -- the report ----------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as loadavg:
        load_average = " ".join(loadavg.read().split()[:3])
    with open("/proc/meminfo") as meminfo:
        memory = int(meminfo.readline().split()[1]) // 1024
    return {
        "CPU": model,
        "cores (nproc)": str(len(os.sched_getaffinity(0))),
        "memory": f"{memory:,} MiB",
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
        "uvicorn", "websockets", "httptools", "python-socketio", "python-engineio", "channels-redis", "redis",
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


SECTION_NOTES = {
    "connect": """Each connection is opened (TCP, the WebSocket handshake, Engine.IO OPEN,
Socket.IO CONNECT on the main namespace and its reply) and closed with the
closing handshake, 50 at a time. **CPU µs/connect** is the server's CPU time
from the first of the measured connects to 0.3 s after the last close,
divided by their number; *connects per CPU-second* is its inverse, the rate
one saturated core would sustain. *Measured connects/s* reaches it only when
the server had its core to itself (*server CPU* near 100%). Medians of the
runs.""",
    "echo": """Each server acks an `echo` event with its own arguments; 50 connections emit
with an ack in a loop. **CPU µs/ack** is the server process's user+system CPU
time over the measured window divided by the acks received in it. **server
CPU** and **loadgen CPU** are the share of one core each process used during
the window: a server well below 100% was not saturated, and its acks/s and
latencies say less about the server than its CPU µs/ack does. Medians of the
runs.""",
    "idle": """A fresh server gets 100 connections, which are closed, and then 5,000 idle
connections, each connected to the main namespace. **KiB/connection** is the
growth of the server's resident memory (`VmRSS`), once it has settled, divided
by 5,000. The raw ASGI rows are the floor: an ASGI application that answers
the handshake and pings, and keeps nothing per connection itself. One run.""",
    "fanout": """A room of N members; one more connection, in no room, emits `fanout` and the
server sends `news` to the room, leaving the sender out (rain_ws:
`await socket.to(room).emit(...)`; python-socketio:
`await sio.emit(..., room=room, skip_sid=sid)`; Node: `socket.to(room).emit(...)`;
bare Channels: `group_send` on the in-memory layer). The latency of a round is
from just before the sender's emit to the kernel's receive timestamp of the
last member's `news`; p50 and p90 over 30 rounds, after 3 unmeasured ones.
**server CPU µs/delivery** is the server's CPU time over those rounds divided
by the messages delivered; *loadgen read p50* is when the load generator had
read them all, for comparison.""",
    "hold": """A fresh server (alone on its core) gets 10,000 idle connections, each
connected to the main namespace; they are held until one ping interval (25 s)
and a second have passed since the last one opened. **pinged** counts the
connections that received a ping in that time (the load generator answers
each with a pong; a server that missed pongs would close connections, counted
as **lost**); *ping late* is when the first ping came, after its connection's
OPEN, beyond the interval. RSS as in the idle scenario, read at the end.""",
    "polling": """Socket.IO over Engine.IO's HTTP long-polling, no WebSocket: each client
(`polling.py`) keeps one GET parked on one keep-alive connection and sends
its POSTs on another; it emits `echo` with an ack, the ack comes back on the
parked GET, and it emits again at once (one event in flight per client, two
HTTP requests per event). **server CPU µs/ack** is the user+system CPU time of
the configuration's server processes (both, for two) over the window divided
by the acks in it; redis-server's is given apart. rain_ws runs as in the
other scenarios (`servers/rain_asgi.py`: HTTP to Django, `rain_ws.urls` at
the root); python-socketio and Node socket.io with their default transports.
The two-process rows: two rain_ws processes on uvicorn sharing one
redis-server through `RedisPubSubChannelLayer`; each session is made on the
first; *requests to the owner* sends every later request there too, *every
request relayed* sends them to the second, which relays each to the owner
through the layer (*relayed: × the owner's* compares the two). The
*upgraded* rows make the session and connect over long-polling on the first
process, then upgrade to a WebSocket (`2probe`, `3probe`, `5`) on the first
(the owner) or on the second, which relays every frame to the owner, and
emit over the WebSocket as in the echo scenario. Medians of the runs; the
load average column is the machine's 1-minute load at the start of each run
(lowest–highest): other work on the machine shares the cores.""",
}


def polling_section(results: dict[str, list[dict[str, Any]]], facts: dict[str, str]) -> str:
    """The ``Long-polling`` section of RESULTS.md, with the facts of its own run."""
    value = polling_ratio({"polling": results})
    verdict = "not measured" if value is None else f"{value:.2f} ({'met' if value <= POLLING_TARGET else 'missed'})"
    details = "\n".join(f"- {name}: {fact}" for name, fact in facts.items())
    return f"""## {TABLES["polling"][0]}

{SECTION_NOTES["polling"]}

**Target**: rain_ws on one process at ≤ {POLLING_TARGET} × python-socketio's server CPU per ack
over long-polling: **{verdict}**.

{polling_table(results)}

Server CPU µs/ack of each run, and the load average (1 min) at its start:

{polling_runs_table(results)}

{details}
"""


def polling_facts(args: argparse.Namespace, loadgen_prefix: list[str], server_prefix: list[str]) -> dict[str, str]:
    """What the long-polling section says of its run, besides what ``run_polling`` adds (the load, the duration)."""
    found = versions()
    names = [
        "Django", "channels", "channels-redis", "redis", "uvicorn", "httptools", "python-socketio", "python-engineio",
        "node", "socket.io (npm)",
    ]  # fmt: skip
    facts = {
        "run on": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "`.venv/bin/python bench/run.py" + ("`" if args.scenarios == ",".join(SCENARIO_NAMES) else f" --scenarios {args.scenarios}`"),
        "rain_ws source": found["rain_ws source"],
        "machine": f"{machine()['CPU']}, {len(os.sched_getaffinity(0))} cores",
        "pinning": f"every server process and redis-server `{' '.join(server_prefix)}`, load generator "
        f"`{' '.join(loadgen_prefix)}`"
        if server_prefix
        else "none",
        "clients": f"{args.polling_connections} per run, {args.warmup} s warm-up, {args.polling_duration} s window, "
        f"{args.runs} runs",
        "uvicorn": " ".join([*UVICORN_OPTIONS, *_POLLING_HTTP]) + " --no-access-log --log-level warning --lifespan off",
        "node": "`node server.mjs PORT polling`",
        "software": ", ".join(f"{name} {found[name]}" for name in names if name in found)
        + (f", redis-server {redis_version()} (no persistence)" if redis_missing() is None else ""),
    }  # fmt: skip
    return facts


def redis_version() -> str:
    found = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    return next((word[2:] for word in found if word.startswith("v=")), "unknown")


def results_sections(results: Results, facts: dict[str, str] | None = None) -> str:
    parts = []
    for name in SCENARIO_NAMES:
        if name not in results:
            continue
        title, table = TABLES[name]
        if name == "polling":
            parts.append(polling_section(results[name], facts or {}))
            continue
        parts.append(f"## {title}\n\n{SECTION_NOTES[name]}\n\n{table(results[name])}\n")
        if name == "echo":
            parts.append(f"Server CPU µs/ack of each run:\n\n{echo_runs_table(results['echo'])}\n")
    return "\n".join(parts)


def write_polling_section(section: str) -> None:
    """
    Put the ``Long-polling`` section into RESULTS.md (a run of only that
    scenario): in place of the old one, else after the last section of the
    full run's scenarios, else before "Machine and settings"; every other
    section is kept as it is.
    """
    old = RESULTS.read_text() if RESULTS.exists() else ""
    parts = re.split(r"(?m)^(?=## )", old)

    def title(part: str) -> str:
        return part[3:].splitlines()[0].strip() if part.startswith("## ") else ""

    new = section.rstrip("\n") + "\n\n"
    titles = [title(part) for part in parts]
    if TABLES["polling"][0] in titles:
        parts[titles.index(TABLES["polling"][0])] = new
    else:
        scenario_titles = [TABLES[name][0] for name in SCENARIO_NAMES if name != "polling"]
        after = [index for index, name in enumerate(titles) if name in scenario_titles]
        if after:
            parts.insert(after[-1] + 1, new)
        elif "Machine and settings" in titles:
            parts.insert(titles.index("Machine and settings"), new)
        else:
            parts.append(("\n" if old and not old.endswith("\n\n") else "") + new)
    RESULTS.write_text("".join(parts).rstrip("\n") + "\n")


def report(
    results: Results, settings: dict[str, Any], started: str, polling_details: dict[str, str] | None = None
) -> str:
    facts = "\n".join(f"- {name}: {value}" for name, value in {**machine(), **settings}.items())
    software = "\n".join(f"- {name}: {version}" for name, version in versions().items())
    return f"""# Benchmark results

rain_ws next to python-socketio, Node socket.io, a bare Channels consumer and
a raw ASGI application: connect rate, CPU per event, idle memory, fan-out to
a room, 10,000 connections on one process, and CPU per event over
long-polling, all from one run. How the
figures are taken is in [README.md](README.md). Run on {started} with
`.venv/bin/python bench/run.py`.

## Targets

rain_ws's figure divided by the reference's, from the same run.

{targets_table(results)}

{results_sections(results, polling_details)}
## Machine and settings

{facts}

## Software

{software}
"""


OWN_SECTIONS = {"Targets", *(title for title, _ in TABLES.values()), "Results", "Machine and settings", "Software"}


def write_section(title: str, text: str) -> None:
    """
    Put ``text``, the section headed ``title`` ("## ..."), into RESULTS.md:
    in place of the section of that title, else at the end. Every other
    section is kept as it is; the benchmarks that run apart from this script
    write theirs with it.
    """
    old = RESULTS.read_text() if RESULTS.exists() else ""
    new = text.strip("\n") + "\n"
    parts = re.split(r"(?m)^(?=## )", old)
    for index, part in enumerate(parts):
        if part.startswith(title + "\n"):
            parts[index] = new + ("\n" if index < len(parts) - 1 else "")
            RESULTS.write_text("".join(parts))
            return
    RESULTS.write_text((old.rstrip("\n") + "\n\n" if old.strip() else "") + new)


def with_other_sections(new: str, old: str) -> str:
    """
    ``new`` with the ``##`` sections of ``old`` that this script does not
    write (other benchmarks' results) kept, before "Machine and settings".
    """
    kept = [
        section
        for section in re.split(r"(?m)^(?=## )", old)
        if section.startswith("## ") and section[3:].splitlines()[0].strip() not in OWN_SECTIONS
    ]
    if not kept:
        return new
    head, tail = new.split("## Machine and settings", 1)
    return head + "".join(section.rstrip("\n") + "\n\n" for section in kept) + "## Machine and settings" + tail


# -- main ----------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every scenario, tiny, one run, unpinned; writes nothing")
    parser.add_argument(
        "--servers", default=",".join(LABELS), help="comma-separated subset of: " + ", ".join(LABELS)
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIO_NAMES),
        help="comma-separated subset of: " + ", ".join(SCENARIO_NAMES) + "; recovery (bench/recovery.py) when named",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of connect and echo")
    parser.add_argument("--connections", type=int, default=50, help="echo: connections")
    parser.add_argument("--warmup", type=float, default=1.5, help="echo: seconds of load before each window")
    parser.add_argument("--duration", type=float, default=5.0, help="echo: seconds in each measured window")
    parser.add_argument("--connects", type=int, default=3000, help="connect: connections measured per run")
    parser.add_argument("--idle-connections", type=int, default=5000, help="idle: connections held")
    parser.add_argument("--rounds", type=int, default=30, help="fanout: rounds measured per room size")
    parser.add_argument("--polling-connections", type=int, default=50, help="polling: clients")
    parser.add_argument("--polling-duration", type=float, default=5.0, help="polling: seconds in each measured window")
    args = parser.parse_args()

    wanted = [key.strip() for key in args.servers.split(",") if key.strip()]
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    separate = [name for name in chosen if name in SEPARATE_SCENARIOS]
    chosen = [name for name in chosen if name not in SEPARATE_SCENARIOS]
    for kind, names, known in (("server", wanted, LABELS), ("scenario", chosen, SCENARIO_NAMES)):
        unknown = [name for name in names if name not in known]
        if unknown:
            parser.error(f"unknown {kind}(s): {', '.join(unknown)}")
    if separate and not chosen:
        return run_separate(separate, args.quick)
    if args.quick:
        args.connections, args.warmup, args.duration, args.runs = 2, 0.2, 1.0, 1
        args.polling_connections, args.polling_duration = 2, QUICK_POLLING_WINDOW
        loadgen_prefix: list[str] = []
        server_prefix: list[str] = []
    else:
        loadgen_prefix, server_prefix = pinning()
    open_files = raise_open_file_limit()

    skipped: dict[str, str] = {}
    if NODE in wanted and (reason := node_missing()) is not None:
        skipped[NODE] = reason
        wanted.remove(NODE)
    scenarios = [scenario for scenario in SCENARIOS if scenario.name in chosen]
    plan = {
        scenario.name: [key for key in LABELS if key in wanted and key in scenario.servers] for scenario in scenarios
    }

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    began = time.monotonic()
    results: Results = {scenario.name: {key: [] for key in plan[scenario.name]} for scenario in scenarios}

    def measure(scenario: Scenario, servers: list[Running]) -> None:
        for number, load in enumerate(scenario.loads(args)):
            for running in servers:
                result = run_load(running, loadgen_prefix, load)
                results[scenario.name][running.spec.key].append(result)
                note = f" {number + 1}" if scenario.name in ("echo", "connect") else ""
                print(progress(scenario.name, running.spec.label + note, result), file=sys.stderr, flush=True)

    shared = [scenario for scenario in scenarios if scenario.name not in ("hold", "polling")]
    keys = [key for key in LABELS if any(key in plan[scenario.name] for scenario in shared)]
    with ExitStack() as stack:
        running = {key: stack.enter_context(start(SERVERS_BY_KEY[key], server_prefix)) for key in keys}
        for scenario in shared:
            measure(scenario, [running[key] for key in plan[scenario.name]])
    if "hold" in plan:
        # One server at a time, fresh, with nothing else running.
        for key in plan["hold"]:
            with start(SERVERS_BY_KEY[key], server_prefix) as alone:
                measure(SCENARIOS_BY_NAME["hold"], [alone])
    facts: dict[str, str] = {}
    if "polling" in plan:
        # Its own servers, started afresh together, with a redis-server.
        facts = polling_facts(args, loadgen_prefix, server_prefix)
        results["polling"] = run_polling(args, plan["polling"], loadgen_prefix, server_prefix, skipped, facts)
    elapsed = time.monotonic() - began

    for name in SCENARIO_NAMES:
        if name in results:
            print(f"\n{TABLES[name][0]}\n\n{TABLES[name][1](results[name])}")
    if "polling" in results:
        print(f"\nLong-polling: server CPU µs/ack of each run\n\n{polling_runs_table(results['polling'])}")
        print("\n" + "\n".join(f"- {name}: {fact}" for name, fact in facts.items()))
    for key, reason in skipped.items():
        print(f"\n{LABELS.get(key, key)} skipped: {reason}")
    print(f"\nTargets\n\n{targets_table(results)}")
    print(f"\n{elapsed:.0f} s in all", file=sys.stderr)

    settings = {
        "pinning": f"server `{' '.join(server_prefix)}`, load generator `{' '.join(loadgen_prefix)}`"
        if server_prefix
        else "none",
        "open files (RLIMIT_NOFILE) for servers and load generators": f"{open_files:,}",
        "connect": f"{args.connects:,} connects per run after 200 unmeasured, 50 at a time, {args.runs} runs",
        "echo": f"{args.connections} connections, {args.warmup} s warm-up, {args.duration} s window, {args.runs} runs",
        "idle": f"{args.idle_connections:,} connections, one run",
        "fan-out": f"rooms of {', '.join(f'{size:,}' for size in ROOM_SIZES)}, {args.rounds} rounds each, one run",
        "hold": f"{HOLD_CONNECTIONS:,} connections, one run",
        "polling": f"{args.polling_connections} clients, {args.warmup} s warm-up, {args.polling_duration} s window, "
        f"{args.runs} runs (see its section)",
        "ping interval": "25 s (every server)",
        "uvicorn": " ".join(UVICORN_OPTIONS) + " --no-access-log --log-level warning --lifespan off",
        "daphne": "-v 0 (warning-level logging, no access log)",
        "duration of the whole run": f"{elapsed / 60:.1f} min",
    }
    failed = any(
        not all(not run.get("errors") for run in runs) or not runs
        for per_server in results.values()
        for runs in per_server.values()
    )
    complete = not skipped and set(wanted) == set(LABELS) and set(chosen) == set(SCENARIO_NAMES)
    polling_only = not skipped and set(POLLING_SERVERS) <= set(wanted) and chosen == ["polling"]
    if not args.quick and complete and not failed:
        old = RESULTS.read_text() if RESULTS.exists() else ""
        RESULTS.write_text(with_other_sections(report(results, settings, started, facts), old))
        print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    elif not args.quick and polling_only and not failed:
        write_polling_section(polling_section(results["polling"], facts))
        print(f"wrote the {TABLES['polling'][0]} section of {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    elif not args.quick:
        print(
            f"{RESULTS.relative_to(ROOT)} not written: it needs every server and scenario (or, for its "
            f"{TABLES['polling'][0]} section alone, `--scenarios polling` with every server), all successful",
            file=sys.stderr,
        )
    if separate:
        failed = run_separate(separate, args.quick) != 0 or failed
    return 1 if failed else 0


def run_separate(names: list[str], quick: bool) -> int:
    """Run the scenarios that have a script of their own (each bounds its own run); 1 if any failed."""
    failed = 0
    for name in names:
        command = [sys.executable, str(BENCH / SEPARATE_SCENARIOS[name]), *(["--quick"] if quick else [])]
        failed |= subprocess.run(command, cwd=ROOT).returncode != 0
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
