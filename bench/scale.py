"""
Cost curves on one process: rain_ws on uvicorn, idle reaper on, holding
1,000, 10,000 and 50,000 idle connections while 50 active clients echo.

One server process (``bench.servers.rain_scale_asgi``, settings
``bench.servers.settings_scale``: ``DISCONNECT_IDLE`` on,
``DISCONNECT_IDLE_ON_MAX_CONN`` at 1,000,000 so nothing is reaped,
``IDLE_CHECK_INTERVAL`` 1 s) per ``PING_INTERVAL`` measured: 25 s, the
default, then 5 s, five times the heartbeat; pinned to one core; this
script, the load generator, on the other. The idle connections are raw
WebSockets (Engine.IO OPEN, Socket.IO CONNECT to ``/``) on ``loadgen.py``'s
``asyncio.Protocol`` client, which answers pings; they are opened once and
grown size by size (1,000, then 9,000 more, ...). At each size:

- RSS per held connection: server ``VmRSS`` growth over the baseline
  (after 100 connections opened and closed), once settled, / connections held;
- heartbeat: after one ping interval, server CPU (``/proc/<pid>/stat``) over
  two ping intervals with only the idle connections, / pings they received;
- reaper sweep: ``ConnectionTracker.sweep`` timed inside the server (see
  ``rain_scale_asgi.py``), mean and max over the sweeps of that window;
- echo: ``loadgen.echo``, 50 fresh clients emitting ``echo`` with an ack in
  a loop, 2 s warm-up, then a window: server CPU per ack (all of it,
  heartbeat included, and net of the heartbeat rate just measured),
  p50/p99 ack latency.

The server's open-file limit bounds the held count: a size above
(hard limit - 200) is cut to that and reported as reached.

Usage, from the repository root::

    .venv/bin/python bench/scale.py                  # writes the section in bench/RESULTS.md and bench/scale.svg
    .venv/bin/python bench/scale.py --sizes 200,1000 --duration 2 --ping-intervals 2 --no-write   # smoke run

Linux only (``/proc``, ``taskset``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run  # noqa: E402
from bench.svg import Panel, Series, line_panels  # noqa: E402
from bench.loadgen import (  # noqa: E402
    Connection,
    CpuMeter,
    Tally,
    Target,
    close_all,
    echo,
    open_all,
    settled_rss,
)

SECTION = "## Scale: cost curves on one process"
SVG = run.RESULTS.parent / "scale.svg"
SPEC = run.ServerSpec(
    "rain_ws-uvicorn-scale", "rain_ws on uvicorn, reaper on", "uvicorn", "bench.servers.rain_scale_asgi:application"
)
#: The floor: an application that keeps nothing per connection, on the same server.
FLOOR = run.ServerSpec("raw-uvicorn-scale", "raw ASGI on uvicorn", "uvicorn", "bench.servers.raw_asgi:application")
SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
OPEN_CONCURRENCY = 100
FD_MARGIN = 200


async def open_from(target: Target, client: Connection, source: str) -> None:
    """Like loadgen.open_connection, bound to a loopback source address (more ephemeral ports)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((source, 0))
        await loop.sock_connect(sock, (target.host, target.port))
        await loop.create_connection(lambda: client, sock=sock)
    except BaseException:
        sock.close()
        raise
    client.sock = sock
    await asyncio.wait_for(client.connected, 30)


async def open_many(target: Target, tally: Tally, count: int, first: int) -> tuple[list[Connection], list[str]]:
    """Open ``count`` idle clients; stop at the first failures and return those opened."""
    opened: list[Connection] = []
    errors: list[str] = []
    numbers = iter(range(first, first + count))

    async def worker() -> None:
        for number in numbers:
            if errors:
                return
            client = target.client(tally)
            try:
                await open_from(target, client, SOURCES[number % len(SOURCES)])
            except Exception as error:  # noqa: BLE001 - reported
                errors.append(f"open #{number}: {type(error).__name__}: {error}")
                return
            opened.append(client)

    await asyncio.gather(*(worker() for _ in range(min(OPEN_CONCURRENCY, count))))
    return opened, errors


def read_sweeps(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"sweeps": 0, "total_s": 0.0, "max_s": 0.0}


async def measure(
    args: argparse.Namespace, interval: float, port: int, pid: int, sweep_file: Path | None, cap: int
) -> dict[str, Any]:
    """Every size on one server; without ``sweep_file`` (the floor), no sweep and no echo."""
    target = Target("127.0.0.1", port, "/socket.io/")
    idle_tally = Tally()
    warm = [target.client(idle_tally) for _ in range(100)]
    await open_all(target, warm)
    await close_all(warm)
    baseline = await settled_rss(pid, 20)
    held: list[Connection] = []
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for size in args.sizes:
        goal = min(size, cap)
        if goal < size:
            notes.append(f"{size:,} asked, {goal:,} is the most the open-file limit allows")
        started = time.perf_counter()
        more, errors = await open_many(target, idle_tally, goal - len(held), len(held))
        held.extend(more)
        opened_s = time.perf_counter() - started
        row: dict[str, Any] = {"asked": size, "held": len(held), "open_s": opened_s, "errors": errors}
        print(f"[{interval:g} s, {size}] holding {len(held):,} (opened {len(more):,} in {opened_s:.1f} s) "
              f"{errors[:1]}", flush=True)  # fmt: skip
        rss = await settled_rss(pid, 15)
        row["rss_kib"] = rss
        row["kib_per_conn"] = (rss - baseline) / len(held) if held else float("nan")
        # Every connection into its ping cycle, then the heartbeat window: idle only.
        await asyncio.sleep(interval + 1)
        pings_before = sum(c.pings for c in held)
        sweeps_before = read_sweeps(sweep_file) if sweep_file else None
        meter = CpuMeter(pid)
        await asyncio.sleep(2 * interval)
        window, server_cpu, _ = meter.read()
        pings = sum(c.pings for c in held) - pings_before
        row.update(
            hb_window_s=window,
            pings_per_s=pings / window,
            hb_cpu_share=server_cpu / window,
            hb_us_per_ping=server_cpu / pings * 1e6 if pings else float("nan"),
            lost=idle_tally.lost,
        )
        if sweeps_before is None:
            print(f"[floor {interval:g} s, {size}] {row['kib_per_conn']:.1f} KiB/conn, "
                  f"{row['hb_us_per_ping']:.1f} us/ping", flush=True)  # fmt: skip
            rows.append(row)
            if errors:
                notes.append(f"stopped opening at {len(held):,}: {errors[0]}")
                break
            continue
        sweeps_after = read_sweeps(sweep_file)  # type: ignore[arg-type]
        n_sweeps = sweeps_after["sweeps"] - sweeps_before["sweeps"]
        row.update(
            sweeps=n_sweeps,
            sweep_mean_us=(sweeps_after["total_s"] - sweeps_before["total_s"]) / n_sweeps * 1e6 if n_sweeps else float("nan"),
            sweep_max_us=sweeps_after["max_s"] * 1e6,
            sweep_held=sweeps_after.get("held"),
            reaped=sweeps_after.get("reaped", 0),
        )
        print(f"[{interval:g} s, {size}] heartbeat {row['pings_per_s']:.0f} pings/s, {row['hb_cpu_share']:.1%} CPU, "
              f"{row['hb_us_per_ping']:.1f} us/ping; sweep {row['sweep_mean_us']:.1f} us", flush=True)
        echoed = await echo(target, args.active, args.warmup, args.duration, pid)
        row.update({f"echo_{k}": v for k, v in echoed.items()})
        row["cpu_us_per_ack"] = echoed["server_cpu_us_per_ack"]
        net = echoed["server_cpu_s"] - row["hb_cpu_share"] * echoed["window_s"]
        row["net_cpu_us_per_ack"] = net / echoed["acks"] * 1e6 if echoed["acks"] else float("nan")
        row["lost"] = idle_tally.lost  # after the echo too
        row["load"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"[{interval:g} s, {size}] echo {echoed['acks_per_s']:.0f} acks/s, {row['cpu_us_per_ack']:.1f} us/ack "
              f"(net {row['net_cpu_us_per_ack']:.1f}), p99 {echoed['p99_ms']:.2f} ms, load {row['load']}", flush=True)
        rows.append(row)
        if errors:
            notes.append(f"stopped opening at {len(held):,}: {errors[0]}")
            break
    await close_all(held, 20)
    return {
        "interval": interval, "baseline_rss_kib": baseline, "rows": rows, "notes": notes,
        "idle_errors": idle_tally.errors,
    }  # fmt: skip


def fmt(value: float, spec: str) -> str:
    return "n/a" if value != value else format(value, spec)


def table(rows: list[dict[str, Any]]) -> str:
    header = [
        "held", "CPU/ack (µs)", "CPU/ack net of heartbeat (µs)", "acks/s", "p50 (ms)", "p99 (ms)",
        "RSS/conn (KiB)", "pings/s", "heartbeat CPU", "CPU/ping (µs)", "sweep mean / max (µs)", "load (1/5/15 min)",
    ]  # fmt: skip
    lines = [header]
    for r in rows:
        lines.append([
            f"{r['held']:,}", fmt(r["cpu_us_per_ack"], ".1f"), fmt(r["net_cpu_us_per_ack"], ".1f"),
            fmt(r["echo_acks_per_s"], ".0f"), fmt(r["echo_p50_ms"], ".2f"), fmt(r["echo_p99_ms"], ".2f"),
            fmt(r["kib_per_conn"], ".1f"), fmt(r["pings_per_s"], ".0f"), fmt(r["hb_cpu_share"] * 100, ".1f") + " %",
            fmt(r["hb_us_per_ping"], ".1f"), f"{fmt(r['sweep_mean_us'], '.1f')} / {fmt(r['sweep_max_us'], '.1f')}",
            r["load"],
        ])  # fmt: skip
    return run.markdown(lines[0], lines[1:])


def floor_table(rows: list[dict[str, Any]], rain_rows: list[dict[str, Any]]) -> str:
    """The floor's memory and heartbeat at each size, and rain_ws's as multiples of them."""
    rain = {r["held"]: r for r in rain_rows}
    lines = []
    for r in rows:
        ours = rain.get(r["held"])
        lines.append([
            f"{r['held']:,}", fmt(r["kib_per_conn"], ".1f"),
            fmt(ours["kib_per_conn"] / r["kib_per_conn"], ".2f") if ours else "–",
            fmt(r["hb_us_per_ping"], ".1f"),
            fmt(ours["hb_us_per_ping"] / r["hb_us_per_ping"], ".2f") if ours else "–",
        ])  # fmt: skip
    return run.markdown(["held", "RSS/conn (KiB)", "rain_ws ×", "CPU/ping (µs)", "rain_ws ×"], lines)


def ratios(rows: list[dict[str, Any]]) -> str:
    if len(rows) < 2:
        return "Fewer than two sizes measured: no ratio."
    first, last = rows[0], rows[-1]
    out = [f"Largest size reached against the smallest ({last['held']:,} / {first['held']:,}), target 1.15x:", ""]
    for label, key in (("CPU per ack", "cpu_us_per_ack"), ("CPU per ack, net of heartbeat", "net_cpu_us_per_ack"),
                       ("p99 ack latency", "echo_p99_ms")):
        ratio = last[key] / first[key]
        out.append(f"- {label}: {ratio:.2f}x ({'meets' if ratio <= 1.15 else 'misses'} 1.15x)")
    return "\n".join(out)


def section(results: list[dict[str, Any]], args: argparse.Namespace, cap: int) -> str:
    parts = [
        SECTION,
        "",
        f"`bench/scale.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: one rain_ws process on uvicorn "
        f"(`--loop asyncio --ws websockets-sansio`, its own WebSocket pings at their default 20 s), pinned to one "
        f"core, the load generator on the other; `DISCONNECT_IDLE` on (`DISCONNECT_IDLE_ON_MAX_CONN` 1,000,000: "
        f"nothing reaped), `IDLE_CHECK_INTERVAL` 1 s; one run per `PING_INTERVAL`: 25 s is the default, 5 s makes "
        f"the heartbeat five times as heavy. {args.active} active clients echo with acks for {args.duration:g} s "
        f"(after {args.warmup:g} s warm-up) while the idle connections are held; CPU per ack is all the server's "
        f"CPU in the window (the idle connections' heartbeat included) / acks, and also net of the heartbeat CPU "
        f"rate measured just before. Heartbeat: server CPU over two ping intervals with only idle connections "
        f"held / pings they received. Sweep: `ConnectionTracker.sweep` timed in the server "
        f"(`bench/servers/rain_scale_asgi.py`). RSS per connection: `VmRSS` growth over the baseline (after 100 "
        f"connections opened and closed) / held.",
        "",
        "![CPU per ack, p99 ack latency, CPU per ping and memory per connection against connections held]"
        "(scale.svg)",
    ]
    for result in results:
        rows = result["rows"]
        notes = [*result["notes"]]
        if result["idle_errors"]:
            notes.append("idle connection errors: " + "; ".join(result["idle_errors"][:3]))
        lost = rows[-1]["lost"] if rows else 0
        if result["server"] == FLOOR.key:
            rain = next(r for r in results if r["interval"] == result["interval"] and r["server"] == SPEC.key)
            parts += [
                "",
                f"The floor, with pings every {result['interval']:g} s: `bench/servers/raw_asgi.py`, an ASGI "
                f"application that keeps nothing per connection, on the same server, holding the same idle "
                f"connections (baseline RSS {result['baseline_rss_kib']:,} KiB, connections lost: {lost}):",
                "",
                floor_table(rows, rain["rows"]),
            ]
        else:
            parts += [
                "",
                f"### `PING_INTERVAL` {result['interval']:g} s",
                "",
                f"Baseline RSS {result['baseline_rss_kib']:,} KiB. Idle connections lost during the run: {lost}.",
                "",
                table(rows),
                "",
                ratios(rows),
            ]
        if notes:
            parts += ["", *[f"- {n}" for n in notes]]
    parts += [
        "",
        f"Open-file hard limit here: {cap + FD_MARGIN:,} (cannot be raised without privileges this machine lacks), "
        f"so one server process can hold at most ~{cap:,} connections"
        f"{'; ' + format(max(args.sizes), ',') + ' was not reachable' if max(args.sizes) > cap else ''}. "
        "The sweep, with fewer connections than `DISCONNECT_IDLE_ON_MAX_CONN`, is only the length check, and with "
        "nothing idle for `IDLE_TIME` it would stop at the first connection: its time does not grow with the count "
        "held; the cost of a sweep that reaps is not measured here. The net figure subtracts the heartbeat CPU "
        "rate measured with the server otherwise idle; under echo load the heartbeat's cost differs, so the net "
        "figure is an estimate only.",
    ]
    return "\n".join(parts) + "\n"


def plot(results: list[dict[str, Any]]) -> str:
    """The curves of every run, one line per server and ping interval, in four panels."""

    def series(key: str, floor: bool = False) -> list[Series]:
        return [
            Series(
                f"{'raw ASGI' if result['server'] == FLOOR.key else 'rain_ws'}, PING_INTERVAL {result['interval']:g} s",
                [(r["held"], r[key]) for r in result["rows"]],
                group=f"{result['interval']:g}",
                dashed=result["server"] == FLOOR.key,
            )
            for result in results
            if floor or result["server"] == SPEC.key
        ]

    return line_panels(
        "rain_ws on uvicorn, one process: cost against connections held",
        "idle connections held",
        [
            Panel("server CPU per ack, heartbeat included", "µs", series("cpu_us_per_ack")),
            Panel("p99 ack latency", "ms", series("echo_p99_ms")),
            Panel("server CPU per Engine.IO ping", "µs", series("hb_us_per_ping", floor=True)),
            Panel("resident memory per connection", "KiB", series("kib_per_conn", floor=True)),
        ],
    )


def measure_on(
    spec: run.ServerSpec, args: argparse.Namespace, interval: float, server_prefix: list[str], cap: int
) -> dict[str, Any] | None:
    """Start ``spec`` with ``interval`` between pings and measure every size on it; None if it died."""
    sweep_file = Path(tempfile.mkstemp(prefix="bench-scale-sweep-", suffix=".json")[1]) if spec is SPEC else None
    environment = {
        "DJANGO_SETTINGS_MODULE": "bench.servers.settings_scale",
        "RAIN_SCALE_PING_INTERVAL": str(interval),
        "RAW_ASGI_PING_INTERVAL": str(interval),
    }
    if sweep_file is not None:
        environment["RAIN_SCALE_SWEEP_FILE"] = str(sweep_file)
    try:
        with run.start(spec, server_prefix, environment) as running:
            measuring = measure(args, interval, running.port, running.process.pid, sweep_file, cap)
            result = asyncio.run(asyncio.wait_for(measuring, args.limit))
            if running.process.poll() is not None:
                print(f"server exited:\n{running.log_tail()}", file=sys.stderr)
                return None
    finally:
        if sweep_file is not None:
            sweep_file.unlink(missing_ok=True)
    result["server"] = spec.key
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--active", type=int, default=50)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--ping-intervals", default="25,5", type=lambda s: [float(x) for x in s.split(",")],
        help="PING_INTERVAL of each run, in seconds",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--limit", type=float, default=600, help="seconds each run may take")
    args = parser.parse_args()

    hard = run.raise_open_file_limit()
    cap = hard - FD_MARGIN
    loadgen_prefix, server_prefix = run.pinning()
    if loadgen_prefix:
        os.sched_setaffinity(0, {int(loadgen_prefix[-1])})
    results = []
    for interval in args.ping_intervals:
        for spec in (SPEC, FLOOR):
            result = measure_on(spec, args, interval, server_prefix, cap)
            if result is None:
                return 1
            results.append(result)
    text = section(results, args, cap)
    print()
    print(text)
    if not args.no_write and all(result["rows"] for result in results):
        run.write_section(SECTION, text)
        SVG.write_text(plot(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
