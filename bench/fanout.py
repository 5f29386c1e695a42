"""
Fan-out across processes: what a room message costs rain_ws when its room
spans server processes through Redis, next to one process on the in-memory
layer, in one run.

Configurations, each fanning out to rooms of 1, 100 and 1,000 members:

- rain_ws, one process on uvicorn, in-memory layer (the baseline; the
  ``fanout`` scenario of ``run.py``);
- rain_ws, one process, ``RedisChannelLayer``; then ``RedisPubSubChannelLayer``;
- rain_ws, two processes sharing one redis-server, each layer in turn: the
  members split evenly between the processes, the sender on the first;
- Node socket.io and the bare Channels consumer (``group_send`` on the
  in-memory layer), one process each, for reference.

A round's latency runs from just before the sender's emit to the kernel's
receive stamp of the last member's ``news``, as in ``loadgen.py``, whose
client this script uses. Server CPU per delivery is summed over a
configuration's server processes; redis-server's is given apart.

Usage, from the repository root::

    .venv/bin/python bench/fanout.py            # full run, under four minutes; writes a section of bench/RESULTS.md
    .venv/bin/python bench/fanout.py --quick    # rooms of 1 and 5, few rounds, unpinned; writes nothing

Linux only (``/proc``, ``SO_TIMESTAMPNS``, ``taskset``). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import json
import os
import re
import shutil
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
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen, run  # noqa: E402

RESULTS = run.RESULTS
SECTION_TITLE = "## Fan-out across processes"
ROOM_SIZES = (1, 100, 1000)
QUICK_ROOM_SIZES = (1, 5)
#: The settings of the rain_ws servers on a Redis layer.
REDIS_SETTINGS = "bench.servers.settings_redis"
DEFAULT_SETTINGS = "bench.servers.settings"

BASELINE = "rain-memory"
NODE = "node"


@dataclass(frozen=True)
class Config:
    """One configuration: the server it runs, how many processes, on which layer."""

    key: str
    label: str
    spec: run.ServerSpec
    processes: int = 1
    layer: str | None = None  # a Redis layer class, or None for the in-memory layer

    @property
    def uses_redis(self) -> bool:
        return self.layer is not None


RAIN = run.SERVERS_BY_KEY[run.RAIN_UVICORN]
CONFIGS = [
    Config(BASELINE, "rain_ws, 1 process, in-memory layer", RAIN),
    Config("rain-redis-1", "rain_ws, 1 process, RedisChannelLayer", RAIN, 1, "RedisChannelLayer"),
    Config("rain-pubsub-1", "rain_ws, 1 process, RedisPubSubChannelLayer", RAIN, 1, "RedisPubSubChannelLayer"),
    Config("rain-redis-2", "rain_ws, 2 processes, RedisChannelLayer", RAIN, 2, "RedisChannelLayer"),
    Config("rain-pubsub-2", "rain_ws, 2 processes, RedisPubSubChannelLayer", RAIN, 2, "RedisPubSubChannelLayer"),
    Config(NODE, "Node socket.io, 1 process", run.SERVERS_BY_KEY[run.NODE]),
    Config("channels", "bare Channels consumer, 1 process, in-memory group_send", run.SERVERS_BY_KEY[run.CHANNELS]),
]


# -- the processes -------------------------------------------------------------


@dataclass
class Process:
    """A started server or redis-server process."""

    label: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]


@contextmanager
def started(label: str, command: list[str], port: int, env: dict[str, str], logs: Path) -> Iterator[Process]:
    """Start a process listening on ``port``, wait until it accepts, and stop it (by its PID) on exit."""
    log_path = logs / f"{re.sub(r'[^A-Za-z0-9]+', '-', label)}-{port}.log"
    with log_path.open("wb") as log:
        # taskset execs the command, so the PID is the server's own.
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    running = Process(label, process, port, log_path)
    try:
        run.wait_until_listening(process, port, label, running.log_tail)
        yield running
    finally:
        run.stop(process)


def redis_missing() -> str | None:
    """Why redis-server cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed: run `apt-get install -y --no-install-recommends redis-server`"
    return None


@contextmanager
def redis_server(prefix: list[str], logs: Path) -> Iterator[Process]:
    """A redis-server on a free port that keeps nothing on disk (no snapshots, no append-only file)."""
    port = run.free_port()
    command = [
        *prefix, "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(logs),
        "--save", "", "--appendonly", "no", "--daemonize", "no",
    ]  # fmt: skip
    with started("redis-server", command, port, dict(os.environ), logs) as redis:
        yield redis


def server_env(config: Config, redis_url: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": DEFAULT_SETTINGS}
    if config.layer is not None:
        assert redis_url is not None
        env.update(DJANGO_SETTINGS_MODULE=REDIS_SETTINGS, BENCH_LAYER=config.layer, BENCH_REDIS_URL=redis_url)
    return env


# -- the load ------------------------------------------------------------------


async def fan_out(
    urls: list[str],
    server_pids: list[int],
    redis_pid: int | None,
    room_size: int,
    rounds: int,
    warmup_rounds: int,
    gap: float,
) -> dict[str, Any]:
    """
    ``room_size`` members join one room, spread over the servers at ``urls``
    (the first member on the last server, so that a room of one is reached
    across processes when there are two); the sender, on the first server,
    emits ``fanout`` and every member must receive ``news`` each round.
    """
    tally = loadgen.Tally()
    targets = [loadgen.Target.parse(url) for url in urls]
    homes = [targets[(index + 1) % len(targets)] for index in range(room_size)]
    members = [home.client(tally) for home in homes]
    sender = targets[0].client(tally)
    room = f"room-{room_size}-{os.getpid()}"
    latencies: list[float] = []
    read_latencies: list[float] = []

    def server_cpu() -> float:
        return sum(loadgen.process_cpu_seconds(pid) for pid in server_pids)

    def redis_cpu() -> float:
        return loadgen.process_cpu_seconds(redis_pid) if redis_pid is not None else 0.0

    try:
        for target in targets:
            await loadgen.open_all(target, [m for m, home in zip(members, homes) if home is target], stamped=True)
        await loadgen.open_connection(targets[0], sender)
        pending = iter(members)

        async def join() -> None:
            for member in pending:
                await member.call("join", room)

        await asyncio.gather(*(join() for _ in range(min(loadgen.OPEN_CONCURRENCY, room_size))))

        with loadgen.Room(members, tally) as readers:
            server_start = redis_start = own_start = wall_start = 0.0
            for number in range(warmup_rounds + rounds):
                if number == warmup_rounds:
                    server_start, redis_start = server_cpu(), redis_cpu()
                    own_start, wall_start = time.process_time(), time.perf_counter()
                payload = b"42" + json.dumps(["fanout", room, number, loadgen.NEWS_DATA]).encode()
                stamped, read = readers.round(number, lambda: sender.send(payload), limit=30)
                if number >= warmup_rounds:
                    latencies.append(stamped)
                    read_latencies.append(read)
                # Let the servers finish the round before the next.
                await asyncio.sleep(gap)
            window = time.perf_counter() - wall_start
            used, used_by_redis = server_cpu() - server_start, redis_cpu() - redis_start
            own = time.process_time() - own_start
            kernel_stamps = readers.stamped
    finally:
        await loadgen.close_all([*members, sender])

    deliveries = rounds * room_size
    latencies.sort()
    read_latencies.sort()
    return {
        "room_size": room_size,
        "rounds": rounds,
        "p50_ms": loadgen.percentile(latencies, 0.5) * 1e3,
        "p90_ms": loadgen.percentile(latencies, 0.9) * 1e3,
        "read_p50_ms": loadgen.percentile(read_latencies, 0.5) * 1e3,
        "kernel_stamps": kernel_stamps,
        "server_cpu_s": used,
        "server_cpu_us_per_delivery": used * 1e6 / deliveries,
        "redis_cpu_ms": used_by_redis * 1e3,
        "loadgen_cpu_share": own / window,
        "errors": tally.errors,
    }


def load_main(spec: str) -> int:
    """The load generator's side (``--load``): one room size against one configuration, JSON on stdout."""
    job = json.loads(spec)
    run.raise_open_file_limit()
    try:
        result = asyncio.run(
            asyncio.wait_for(
                fan_out(
                    job["urls"], job["server_pids"], job["redis_pid"], job["room_size"],
                    job["rounds"], job["warmup_rounds"], job["gap"],
                ),
                job["limit"],
            )
        )  # fmt: skip
    except (OSError, loadgen.LoadError, TimeoutError) as error:
        print(json.dumps({"errors": [f"{type(error).__name__}: {error}"]}))
        return 1
    print(json.dumps(result))
    return 1 if result["errors"] else 0


@dataclass
class Deployment:
    """A configuration's running server processes."""

    config: Config
    servers: list[Process]
    results: list[dict[str, Any]] = field(default_factory=list)


def measure(
    deployment: Deployment, redis: Process | None, prefix: list[str], room_size: int, rounds: int, warmup: int
) -> dict[str, Any]:
    """One run of the load generator (this script with ``--load``) for one room size."""
    limit = 120.0
    job = {
        "urls": [f"ws://127.0.0.1:{server.port}/socket.io/" for server in deployment.servers],
        "server_pids": [server.pid for server in deployment.servers],
        "redis_pid": redis.pid if redis is not None and deployment.config.uses_redis else None,
        "room_size": room_size,
        "rounds": rounds,
        "warmup_rounds": warmup,
        "gap": 0.02,
        "limit": limit,
    }
    command = [*prefix, sys.executable, str(Path(__file__).resolve()), "--load", json.dumps(job)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit + 10)
    except subprocess.TimeoutExpired:
        return {"errors": [f"load generator still running after {limit + 10:.0f} s"]}
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"errors": [f"load generator exited {done.returncode}: {done.stderr.strip()[-1000:]}"]}
    for server in deployment.servers:
        if server.process.poll() is not None:
            result.setdefault("errors", []).append(f"{server.label} exited:\n{server.log_tail()}")
    return result


# -- the table -----------------------------------------------------------------


def of(results: list[dict[str, Any]], size: int) -> dict[str, Any] | None:
    return next((result for result in results if result.get("room_size") == size and not result.get("errors")), None)


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "–"
    return f"{value / reference:.2f}"


def table(deployments: list[Deployment], sizes: tuple[int, ...]) -> str:
    """One row per configuration; ratios of the largest room against Node and the baseline."""
    largest = max(sizes)
    by_key = {deployment.config.key: deployment for deployment in deployments}

    def figure(key: str, name: str) -> float | None:
        found = of(by_key[key].results, largest) if key in by_key else None
        return found[name] if found else None

    rows = []
    for deployment in deployments:
        results = deployment.results
        big = of(results, largest)
        if big is None or any(result.get("errors") for result in results) or len(results) != len(sizes):
            errors = "; ".join(error for result in results for error in result.get("errors", []))
            rows.append([deployment.config.label, "failed: " + errors.replace("\n", " ").replace("|", "/")[:300]])
            continue
        cells = [f"{of(results, size)['p50_ms']:.2f} / {of(results, size)['p90_ms']:.2f}" for size in sizes]  # type: ignore[index]
        cpu = big["server_cpu_us_per_delivery"]
        redis_cpu = f"{big['redis_cpu_ms']:.0f}" if deployment.config.uses_redis else "–"
        rows.append([
            deployment.config.label, *cells,
            ratio(big["p50_ms"], figure(NODE, "p50_ms")), ratio(big["p50_ms"], figure(BASELINE, "p50_ms")),
            f"{cpu:.1f}", ratio(cpu, figure(NODE, "server_cpu_us_per_delivery")),
            ratio(cpu, figure(BASELINE, "server_cpu_us_per_delivery")), redis_cpu, f"{big['read_p50_ms']:.2f}",
        ])  # fmt: skip
    header = [
        "configuration", *(f"room of {size:,}: p50 / p90 ms" for size in sizes),
        f"{largest:,}: p50 × Node", f"{largest:,}: p50 × (a)", f"{largest:,}: server CPU µs/delivery",
        "CPU × Node", "CPU × (a)", f"{largest:,}: redis-server CPU ms, all rounds", "loadgen read p50 ms",
    ]  # fmt: skip
    return run.markdown(header, rows)


def redis_version() -> str:
    found = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    version = next((word for word in found if word.startswith("v=")), "v=unknown")
    return version[2:]


def section(text: str, settings: dict[str, str]) -> str:
    facts = "\n".join(f"- {name}: {value}" for name, value in settings.items())
    return f"""{SECTION_TITLE}

rain_ws's room fan-out when the room spans server processes through Redis,
from one run of `.venv/bin/python bench/fanout.py` (see README.md): one
rain_ws process on uvicorn with the in-memory layer (**(a)**, the baseline),
one process on each of channels-redis's layers, and two processes sharing one
redis-server on each layer, the members split evenly between them (a room of
one: its member on the second process) and the sender on the first; Node
socket.io and the bare Channels consumer (`group_send`, in-memory layer), one
process each, for reference. The latency of a round is from just before the
sender's emit to the kernel's receive stamp of the last member's `news`; p50
and p90 over the rounds. **server CPU µs/delivery** is the CPU time of the
configuration's server processes (both, for two) over the rounds divided by
the messages delivered. redis-server's CPU time is given over all the
rounds, in milliseconds: rain_ws sends one layer message per process and
emit, whatever the room's size, and `/proc` counts in ticks of
{1000 // os.sysconf("SC_CLK_TCK")} ms.

{text}

{facts}
"""


# -- main ----------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="rooms of 1 and 5, few rounds, unpinned; writes nothing")
    parser.add_argument("--rounds", type=int, default=30, help="rounds measured per room size")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load is not None:
        return load_main(args.load)

    sizes, rounds, warmup = (QUICK_ROOM_SIZES, 3, 1) if args.quick else (ROOM_SIZES, args.rounds, 3)
    loadgen_prefix, server_prefix = ([], []) if args.quick else run.pinning()
    open_files = run.raise_open_file_limit()
    if (missing := redis_missing()) is not None:
        print(missing, file=sys.stderr)
        return 1
    configs = list(CONFIGS)
    skipped = {}
    if (reason := run.node_missing()) is not None:
        skipped[NODE] = reason
        configs = [config for config in configs if config.key != NODE]

    started_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open("/proc/loadavg") as loadavg:
        load_average = " ".join(loadavg.read().split()[:3])
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as directory, ExitStack() as stack:
        logs = Path(directory)
        redis = stack.enter_context(redis_server(server_prefix, logs))
        deployments = []
        for config in configs:
            env = server_env(config, f"redis://127.0.0.1:{redis.port}/0")
            servers = []
            for number in range(config.processes):
                port = run.free_port()
                label = f"{config.label} #{number + 1}"
                servers.append(
                    stack.enter_context(started(label, [*server_prefix, *config.spec.command(port)], port, env, logs))
                )
            deployments.append(Deployment(config, servers))
        # Each room size on every configuration in turn, so that a change in
        # the machine's load falls on all of them.
        for size in sizes:
            for deployment in deployments:
                result = measure(deployment, redis, loadgen_prefix, size, rounds, warmup)
                deployment.results.append(result)
                summary = (
                    "; ".join(result["errors"])[:500]
                    if result.get("errors")
                    else f"p50 {result['p50_ms']:.2f} ms, {result['server_cpu_us_per_delivery']:.1f} µs/delivery"
                )
                print(f"room of {size}, {deployment.config.label}: {summary}", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - began

    text = table(deployments, sizes)
    print(f"\nFan-out across processes\n\n{text}")
    for key, reason in skipped.items():
        print(f"\n{key} skipped: {reason}")
    print(f"\n{elapsed:.0f} s in all", file=sys.stderr)

    failed = any(result.get("errors") for deployment in deployments for result in deployment.results)
    if args.quick:
        return 1 if failed else 0
    if failed or skipped:
        print(f"{RESULTS.relative_to(ROOT)} not written: it needs every configuration, all successful", file=sys.stderr)
        return 1
    versions = {
        name: importlib.metadata.version(name) for name in ("channels", "channels-redis", "redis", "uvicorn")
    }
    settings = {
        "run on": started_at,
        "machine": f"{run.machine()['CPU']}, {len(os.sched_getaffinity(0))} cores, load average at start {load_average}",
        "rain_ws source": f"git {run.source_revision()}",
        "pinning": f"every server process and redis-server `{' '.join(server_prefix)}`, "
        f"load generator `{' '.join(loadgen_prefix)}`"
        if server_prefix
        else "none",
        "open files (RLIMIT_NOFILE)": f"{open_files:,}",
        "rounds": f"{rounds} per room size after {warmup} unmeasured, 20 ms apart, one run",
        "software": ", ".join(f"{name} {version}" for name, version in versions.items())
        + f", redis-server {redis_version()} (no persistence)",
        "duration": f"{elapsed:.0f} s",
    }
    run.write_section(SECTION_TITLE, section(text, settings))
    print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
