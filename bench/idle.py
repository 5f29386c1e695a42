"""
Idle connections at scale: what the idle reaper costs on one rain_ws process.

Three measurements, written as a section of bench/RESULTS.md (in place of
the one an earlier run wrote):

1. **Sweep, in process.** :class:`rain_ws.idle.ConnectionTracker` holding
   10,000 stand-in connections (plain objects with ``last_active``, ``busy``
   and a ``reap()`` that only marks them), of which 0, 100 or 5,000 are idle;
   the time one ``sweep()`` takes, and one ``touch()``, the call every event
   makes when the reaper is on. This is the tracker's own cost, without the
   network work of disconnecting.
2. **Reaping, end to end.** rain_ws on uvicorn with the reaper on holds
   10,000 connections from this process, of which 0, 100 or 5,000 have been
   idle for ``IDLE_TIME`` when a check comes: the server's CPU time over the
   window in which they are disconnected (the sweeps, the DISCONNECT packets,
   the closing handshakes, the teardown).
3. **Tracking per event.** The echo load of ``bench/loadgen.py`` (50
   connections doing emit-with-ack) against rain_ws on uvicorn holding 10,000
   idle connections, with ``DISCONNECT_IDLE`` off and on (``IDLE_TIME`` long
   enough that nothing is reaped): server CPU µs per ack, as in
   ``bench/run.py``.

Usage, from the repository root::

    .venv/bin/python bench/idle.py            # full run, about five minutes; writes its section of RESULTS.md
    .venv/bin/python bench/idle.py --quick    # 1,000 connections, one run; prints, writes nothing

Linux only (``/proc``, ``taskset``); loopback only. The open-files limit is
raised to its hard limit in this process and in each server; the run stops
if that is below what 10,000 connections need.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench import run as bench_run  # noqa: E402
from bench.loadgen import OPEN_CONCURRENCY, Connection, Target, Tally, close_all, open_all, process_cpu_seconds  # noqa: E402
from rain_ws.conf import RainSettings  # noqa: E402
from rain_ws.idle import ConnectionTracker  # noqa: E402

RESULTS = bench_run.RESULTS
SECTION_TITLE = "## Idle connections and the idle reaper"

#: The servers read RAIN_WS from this environment variable (see SETTINGS_SOURCE).
SETTINGS_ENV = "RAIN_WS_IDLE_BENCH"
SETTINGS_MODULE = "rain_ws_idle_bench_settings"
SETTINGS_SOURCE = f'''"""The benchmark's server settings, with RAIN_WS from ${SETTINGS_ENV}."""
import json
import os

from bench.servers.settings import *  # noqa: F403

RAIN_WS = {{"REQUIRE_SESSION": False, **json.loads(os.environ["{SETTINGS_ENV}"])}}
'''

#: The resolution of the CPU times in /proc, in seconds.
TICK = 1 / os.sysconf("SC_CLK_TCK")
#: Heartbeats far apart, so that no round of 10,000 pings falls in a window.
QUIET_HEARTBEAT = {"PING_INTERVAL": 600, "PING_TIMEOUT": 60, "CONNECT_TIMEOUT": 60}


# -- 1. the sweep, in process -------------------------------------------------


class StandIn:
    """What the tracker reads and calls on a connection, and nothing else."""

    __slots__ = ("busy", "last_active", "reaped")

    def __init__(self) -> None:
        self.last_active = 0.0
        self.busy = False
        self.reaped = False

    def reap(self) -> None:
        self.reaped = True


async def time_sweeps(total: int, idle_counts: list[int], repeats: int) -> dict[str, Any]:
    """Median seconds of one sweep() for each idle count, and of one touch() (over rounds of ``total``)."""
    settings = RainSettings(DISCONNECT_IDLE=True, IDLE_TIME=60.0, DISCONNECT_IDLE_ON_MAX_CONN=1)
    loop = asyncio.get_running_loop()
    tasks_before = asyncio.all_tasks()
    sweeps: dict[int, float] = {}
    for idle in idle_counts:
        samples = []
        for _ in range(repeats):
            tracker = ConnectionTracker(settings)
            connections = [StandIn() for _ in range(total)]
            for connection in connections:
                tracker.admit(connection)  # type: ignore[arg-type]
            # The first `idle` admitted are the least recently active: make
            # them idle for longer than IDLE_TIME.
            for connection in connections[:idle]:
                connection.last_active = loop.time() - 2 * settings.IDLE_TIME
            started = time.perf_counter()
            reaped = tracker.sweep()
            samples.append(time.perf_counter() - started)
            if reaped != idle:
                raise RuntimeError(f"sweep reaped {reaped} connections, expected {idle}")
        sweeps[idle] = statistics.median(samples)

    tracker = ConnectionTracker(settings)
    connections = [StandIn() for _ in range(total)]
    for connection in connections:
        tracker.admit(connection)  # type: ignore[arg-type]
    touches = []
    for _ in range(repeats):
        started = time.perf_counter()
        for connection in connections:
            tracker.touch(connection)  # type: ignore[arg-type]
        touches.append((time.perf_counter() - started) / total)
    touch = statistics.median(touches)

    # admit() started the reaper's task on this loop; it has nothing to do here.
    for task in asyncio.all_tasks() - tasks_before:
        task.cancel()
    return {"sweep_s": sweeps, "touch_s": touch}


# -- servers and connections ----------------------------------------------------


class IdleConnection(Connection):
    """
    A client that connects the main namespace and then stays silent; the
    server disconnecting it (the reaper's DISCONNECT, then the close) ends it
    quietly and marks it reaped.
    """

    reaped = False

    def _on_text(self, text: str) -> None:
        if text == "41":
            self.reaped = True
            self.close()
            return
        super()._on_text(text)

    def _fail(self, reason: str) -> None:
        # The server's close frame after its DISCONNECT is expected.
        if not self.reaped:
            super()._fail(reason)


@contextmanager
def server(rain_ws: dict[str, Any], prefix: list[str], settings_dir: str) -> Iterator[bench_run.Running]:
    """rain_ws on uvicorn with ``rain_ws`` as RAIN_WS; stopped (its PID only) on exit."""
    spec = bench_run.SERVERS_BY_KEY[bench_run.RAIN_UVICORN]
    port = bench_run.free_port()
    log = tempfile.NamedTemporaryFile(prefix="bench-idle-", suffix=".log", delete=False)
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{settings_dir}",
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        SETTINGS_ENV: json.dumps(rain_ws),
    }
    process = subprocess.Popen(
        [*prefix, *spec.command(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        # The server holds a descriptor per connection too; it would inherit
        # this process's raised limit, but says so itself.
        preexec_fn=bench_run.raise_open_file_limit,
    )
    running = bench_run.Running(spec, process, port, Path(log.name))
    try:
        bench_run.wait_until_listening(process, port, "the server", running.log_tail)
        yield running
    finally:
        bench_run.stop(process)
        log.close()
        os.unlink(log.name)


async def open_idle(port: int, count: int, timeout: float) -> list[IdleConnection]:
    """Open ``count`` connections with the main namespace connected, a hundred at a time."""
    target = Target("127.0.0.1", port, "/socket.io/")
    tally = Tally(running=False)
    clients = [IdleConnection(tally, target.host, target.port, target.path) for _ in range(count)]
    await asyncio.wait_for(open_all(target, clients), timeout)  # type: ignore[arg-type]
    return clients


# -- 2. reaping, end to end ----------------------------------------------------------


async def time_reaping(
    total: int, idle: int, idle_time: float, prefix: list[str], settings_dir: str
) -> dict[str, Any]:
    """
    Server CPU over the window in which ``idle`` of ``total`` connections are
    reaped: the idle ones are opened first, the others two seconds later, so
    that the first are past IDLE_TIME while the others are not yet.
    """
    rain_ws = {
        **QUIET_HEARTBEAT,
        "DISCONNECT_IDLE": True,
        "IDLE_TIME": idle_time,
        "IDLE_CHECK_INTERVAL": 0.5,
        "DISCONNECT_IDLE_ON_MAX_CONN": 1,
    }
    loop = asyncio.get_running_loop()
    with server(rain_ws, prefix, settings_dir) as running:
        first_opened = loop.time()
        old = await open_idle(running.port, idle, timeout=idle_time / 2)
        old_opened = loop.time()
        await asyncio.sleep(2.0)
        young = await open_idle(running.port, total - idle, timeout=idle_time - 4)
        if loop.time() > first_opened + idle_time - 1:
            raise RuntimeError(f"opening took too long for IDLE_TIME {idle_time} s")

        # From half a second before the first can be idle to one check after
        # the last is: every sweep that reaps them, and what follows.
        await asyncio.sleep(first_opened + idle_time - 0.5 - loop.time())
        pid = running.process.pid
        cpu_before, started = process_cpu_seconds(pid), loop.time()
        await asyncio.sleep(old_opened + idle_time + 1.5 - loop.time())
        cpu, window = process_cpu_seconds(pid) - cpu_before, loop.time() - started

        reaped_old = sum(client.reaped for client in old)
        reaped_young = sum(client.reaped for client in young)
        await close_all(old + young)  # type: ignore[arg-type]
    if reaped_old != idle or reaped_young:
        raise RuntimeError(
            f"expected the {idle} idle connections reaped and no other: "
            f"{reaped_old} idle and {reaped_young} others were"
        )
    return {"idle": idle, "window_s": window, "server_cpu_s": cpu}


# -- 3. tracking per event -------------------------------------------------------------


async def time_echo(
    total: int, reaper: bool, prefix: list[str], loadgen_prefix: list[str], settings_dir: str,
    warmup: float, duration: float,
) -> dict[str, Any]:  # fmt: skip
    """The echo load's server CPU per ack with ``total`` idle connections open."""
    rain_ws: dict[str, Any] = dict(QUIET_HEARTBEAT)
    if reaper:
        # Sweeps every second that find nothing idle: the reaper's cost is
        # the tracking on each event, and a look at the oldest connection.
        rain_ws.update(DISCONNECT_IDLE=True, IDLE_TIME=3600, IDLE_CHECK_INTERVAL=1, DISCONNECT_IDLE_ON_MAX_CONN=1)
    with server(rain_ws, prefix, settings_dir) as running:
        idle = await open_idle(running.port, total, timeout=120)
        load = bench_run.Load(
            "echo", ["--connections", "50", "--warmup", str(warmup), "--duration", str(duration)], warmup + duration + 20
        )
        result = await asyncio.to_thread(bench_run.run_load, running, loadgen_prefix, load)
        await close_all(idle)  # type: ignore[arg-type]
    if result.get("errors"):
        raise RuntimeError(f"echo load failed: {result['errors']}")
    return result


# -- report ---------------------------------------------------------------------------


def section(
    total: int, sweeps: dict[str, Any], reaping: list[dict[str, Any]], echo: dict[bool, list[dict[str, Any]]],
    date: str, facts: dict[str, str],
) -> str:  # fmt: skip
    baseline = reaping[0]["server_cpu_s"] / reaping[0]["window_s"]
    sweep_rows = "\n".join(
        f"| {idle:,} | {seconds * 1e6:,.1f} | " + (f"{seconds / idle * 1e9:,.0f}" if idle else "–") + " |"
        for idle, seconds in sweeps["sweep_s"].items()
    )
    reaping_rows = []
    for row in reaping:
        extra = max(0.0, row["server_cpu_s"] - baseline * row["window_s"])
        # /proc counts CPU time in ticks (usually 10 ms): below a few ticks a
        # share per connection would be noise.
        per = f"{extra / row['idle'] * 1e6:,.0f}" if row["idle"] and extra >= 5 * TICK else "–"
        reaping_rows.append(
            f"| {row['idle']:,} | {row['window_s']:.2f} | {row['server_cpu_s'] * 1e3:,.0f} "
            f"| {extra * 1e3:,.0f} | {per} |"
        )
    off = [run["server_cpu_us_per_ack"] for run in echo[False]]
    on = [run["server_cpu_us_per_ack"] for run in echo[True]]
    runs = " / ".join(f"{a:.1f} vs {b:.1f}" for a, b in zip(off, on))
    fact_lines = "\n".join(f"- {name}: {value}" for name, value in facts.items())
    return f"""
{SECTION_TITLE}

Run on {date} with `.venv/bin/python bench/idle.py`; method in
[README.md](README.md#idle-connections-benchidlepy).

**Sweep, in process** (`ConnectionTracker` with {total:,} stand-in connections;
median of the repeats). A sweep looks only at the connections it reaps and
stops at the first that is not idle, so its cost follows the idle count, not
the connection count. `touch()`, called on every event in and out when
`DISCONNECT_IDLE` is on, takes {sweeps["touch_s"] * 1e9:.0f} ns.

| idle among {total:,} | one sweep, µs | per reaped connection, ns |
|---:|---:|---:|
{sweep_rows}

**Reaping, end to end** (rain_ws on uvicorn, {total:,} connections, reaper
on). Server CPU over the window in which the idle connections are
disconnected; *beyond idle* subtracts what the server spends in an equal
window with nothing to reap (the first row). CPU times come in ticks of
{TICK * 1e3:.0f} ms, so a per-connection figure is given only where the
difference is several ticks.

| idle among {total:,} | window, s | server CPU, ms | beyond idle, ms | per reaped connection, µs |
|---:|---:|---:|---:|---:|
{chr(10).join(reaping_rows)}

**Tracking per event** (echo load, 50 connections, with {total:,} idle
connections open; median of {len(off)} runs each).

| DISCONNECT_IDLE | server CPU µs/ack |
|---|---:|
| off | {statistics.median(off):.1f} |
| on | {statistics.median(on):.1f} |

Each run, off vs on: {runs}.

{fact_lines}
"""


async def main_async(args: argparse.Namespace) -> str:
    total = args.connections
    machine = bench_run.machine()  # before this process is pinned to one core
    loadgen_prefix, server_prefix = ([], []) if args.quick else bench_run.pinning()
    if loadgen_prefix:
        # This process holds the idle connections: keep it off the server's core.
        os.sched_setaffinity(0, {int(loadgen_prefix[-1])})

    print("sweep, in process", file=sys.stderr, flush=True)
    idle_counts = sorted({0, min(100, total), total // 2})
    sweeps = await time_sweeps(total, idle_counts, repeats=3 if args.quick else 15)

    results: list[dict[str, Any]] = []
    echo: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="bench-idle-settings-") as settings_dir:
        Path(settings_dir, SETTINGS_MODULE + ".py").write_text(SETTINGS_SOURCE)
        for idle in idle_counts:
            print(f"reaping {idle} of {total}", file=sys.stderr, flush=True)
            results.append(await time_reaping(total, idle, args.idle_time, server_prefix, settings_dir))
        for number in range(args.runs):
            # Off first, then on first: a drift in the machine's load during
            # a pair does not always fall on the same side.
            for reaper in (False, True) if number % 2 == 0 else (True, False):
                print(f"echo run {number + 1}/{args.runs}, reaper {'on' if reaper else 'off'}", file=sys.stderr, flush=True)
                echo[reaper].append(
                    await time_echo(
                        total, reaper, server_prefix, loadgen_prefix, settings_dir, args.warmup, args.duration
                    )
                )

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = {
        **machine,
        "rain_ws source": f"git {bench_run.source_revision()}",
        "connections": f"{total:,}, opened {OPEN_CONCURRENCY} at a time, from one process",
        "reaping": f"IDLE_TIME {args.idle_time} s, IDLE_CHECK_INTERVAL 0.5 s, DISCONNECT_IDLE_ON_MAX_CONN 1",
        "echo load": f"50 connections, {args.warmup} s warm-up, {args.duration} s window, {args.runs} runs "
        "with the reaper off and as many on, alternating",
        "pinning": f"server `{' '.join(server_prefix)}`, this process and the load generator "
        f"`{' '.join(loadgen_prefix)}`"
        if server_prefix
        else "none",
        "uvicorn": " ".join(bench_run.UVICORN_OPTIONS) + " --no-access-log --log-level warning --lifespan off",
    }
    return section(total, sweeps, results, echo, date, facts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 connections, one run, short windows; writes nothing")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--idle-time", type=float, default=20.0, help="IDLE_TIME of the reaping runs, seconds")
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.quick:
        args.connections, args.idle_time, args.warmup, args.duration, args.runs = 1000, 8.0, 0.2, 1.0, 1

    limit = bench_run.raise_open_file_limit()
    needed = args.connections + 100
    if limit < needed:
        print(f"the open-files limit is {limit}; {needed} are needed: raise the hard limit (ulimit -Hn)", file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        text = asyncio.run(asyncio.wait_for(main_async(args), timeout=900))
    except (RuntimeError, OSError, TimeoutError) as error:
        print(f"failed after {time.monotonic() - started:.0f} s: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(text)
    if not args.quick:
        bench_run.write_section(SECTION_TITLE, text)
        print(f"wrote its section of {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
