"""
100,000 connections across server processes: a broadcast to all of them and
a room of 10,000 spread over the processes, rain_ws next to Node socket.io,
in one run.

Two deployments, one after the other, each on the same number of processes
sharing one redis-server:

- rain_ws on uvicorn (``bench.servers.rain_asgi`` with
  ``bench.servers.settings_cluster``: ``RedisPubSubChannelLayer``, the
  cluster component, whose ``broadcast`` is ``socket.broadcast.emit``);
- Node socket.io with ``@socket.io/redis-adapter`` (``node/cluster.mjs``,
  ``socket.broadcast.emit``).

Each server process listens on a port of its own and gets an equal share of
the connections (what a load balancer in front would do): one process may
hold no more than the open-file limit, which this machine keeps at 20,000
(the hard limit; raising it takes a privilege it does not have), so the
connections need several processes. Load generator processes (``--worker``,
one per server process, each below the limit too) hold the connections with
``loadgen.py``'s client, bound round-robin to the source addresses
127.0.0.2-127.0.0.9 (one source address has some 28,000 ephemeral ports);
this script, the coordinator, holds the sender and tells the workers when a
round starts.

A round: every worker takes its members' sockets off its event loop (they
have ``SO_TIMESTAMPNS`` on) and says so; the coordinator notes the time and
the sender emits ``broadcast`` (or ``fanout`` to the room); each worker
reads its members until every one has the round's ``news`` and reports the
kernel's receive stamp of each. A stamp is taken as the segment reaches the
socket, inside the server's ``send`` on loopback, so how fast the workers
read changes nothing. Per round: p50, p99 and max over the members of the
time from the emit to their stamp.

After the rounds every connection must be open, none lost, and each must
have had a ping from its server within one ping interval (and five seconds)
after the last round: a server that had dropped a connection for a late pong
would have closed it.

Usage, from the repository root::

    .venv/bin/python bench/cluster.py            # full run, about ten minutes; writes a section of bench/RESULTS.md
    .venv/bin/python bench/cluster.py --quick    # 2 processes, 300 connections, short heartbeat; writes nothing

Linux only (``/proc``, ``SO_TIMESTAMPNS``, ``taskset``). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen, run  # noqa: E402
from bench.fanout import Process, redis_server, redis_version, started  # noqa: E402

RESULTS = run.RESULTS
SECTION_TITLE = "## 100,000 connections across processes"
#: Source addresses the workers bind, round-robin: each has its own ephemeral ports.
SOURCES = [f"127.0.0.{number}" for number in range(2, 10)]
#: Descriptors a process keeps beside its connections (listening socket, Redis, pipes, ...).
FD_MARGIN = 500
RAIN = "rain_ws"
#: rain_ws with uvicorn's own WebSocket pings off: Engine.IO's heartbeat already
#: tells a dead connection, and uvicorn's keeps a timer per connection.
RAIN_NO_WS_PING = "rain_ws-no-ws-ping"
NODE = "node"
LABELS = {
    RAIN: "rain_ws on uvicorn, RedisPubSubChannelLayer",
    RAIN_NO_WS_PING: "rain_ws on uvicorn --ws-ping-interval 0, RedisPubSubChannelLayer",
    NODE: "Node socket.io, @socket.io/redis-adapter",
}
RAIN_KEYS = (RAIN, RAIN_NO_WS_PING)
ROOM = "cluster-room"
#: socket.io's and rain_ws's default heartbeat, seconds.
PING_INTERVAL, PING_TIMEOUT = 25.0, 20.0
#: Seconds past one ping interval after the rounds by which every connection must have had a ping.
PING_SLACK = 5.0


# -- the worker: a load generator process holding its share of the connections --


#: Seconds a connection may take to open (TCP, WebSocket handshake, OPEN, the
#: CONNECT reply); socket.io-client gives up after 20 s and tries again.
OPEN_LIMIT = 30.0
#: Tries per connection: one that does not open in time is aborted and opened afresh.
OPEN_TRIES = 3


async def open_from(target: loadgen.Target, client: loadgen.Connection, source: str) -> None:
    """
    Like ``loadgen.open_connection(..., stamped=True)``, bound to a loopback
    source address, within :data:`OPEN_LIMIT` seconds (else aborted).
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    deadline = loop.time() + OPEN_LIMIT
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, loadgen.SO_TIMESTAMPNS, 1)
        sock.bind((source, 0))
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (target.host, target.port)), OPEN_LIMIT)
        except TimeoutError:
            raise loadgen.LoadError(f"TCP connect took over {OPEN_LIMIT:g} s") from None
        await loop.create_connection(lambda: client, sock=sock)
    except BaseException:
        sock.close()
        raise
    client.sock = sock
    try:
        await asyncio.wait_for(asyncio.shield(client.connected), max(deadline - loop.time(), 0.1))
    except TimeoutError:
        client.closing = True
        client.transport.abort()
        # Aborted, its handshake fails: nobody waits for that any more.
        client.connected.add_done_callback(lambda future: future.cancelled() or future.exception())
        stage = "CONNECT reply" if client.opened_at else "Engine.IO OPEN" if client.upgraded else "WebSocket handshake"
        raise loadgen.LoadError(f"no {stage} within {OPEN_LIMIT:g} s") from None


def gone(client: loadgen.Connection) -> bool:
    """Whether a connection has ended (the server closed it, or it broke)."""
    return client.transport is None or client.transport.is_closing() or client.closed.done()


def read_round(members: list[loadgen.Connection], number: int, limit: float) -> tuple[list[int], int]:
    """
    Take ``members`` off the event loop, say so on stdout, and read them
    until each has had ``news`` of round ``number``; return the kernel's
    receive stamps of those frames (ns, wall clock) and how many members
    were lost meanwhile (closed by the server, or broken). Pings that arrive
    meanwhile are answered as they are read. The members go back to the
    event loop afterwards.
    """
    poller = select.epoll()
    by_fd = {}
    lost = 0
    try:
        for member in members:
            if gone(member):
                continue
            member.transport.pause_reading()
            fd = member.sock.fileno()
            by_fd[fd] = member
            poller.register(fd, select.EPOLLIN)
        print(json.dumps({"armed": number}), flush=True)
        stamps: list[int] = []
        waiting = len(by_fd)
        deadline = time.monotonic() + limit
        while waiting:
            for fd, _ in poller.poll(0.1):
                member = by_fd[fd]
                try:
                    data, ancillary, _, _ = member.sock.recvmsg(65536, loadgen.STAMP_SPACE)
                except BlockingIOError:
                    continue
                except OSError:
                    data, ancillary = b"", []
                had = member.news
                if data:
                    member.data_received(data)
                if member.news == number and had != number:
                    waiting -= 1
                    stamp = loadgen.kernel_stamp(ancillary)
                    stamps.append(stamp if stamp is not None else time.time_ns())
                elif not data or member.transport.is_closing():
                    # The server closed it (the client reports the close frame) or it broke.
                    poller.unregister(fd)
                    lost += 1
                    waiting -= 1
                    if not data and not member.transport.is_closing():
                        member.transport.abort()
            if waiting and time.monotonic() > deadline:
                raise loadgen.LoadError(f"round {number}: {waiting} member(s) had no news within {limit} s")
        return stamps, lost
    finally:
        poller.close()
        for member in members:
            if not member.transport.is_closing():
                member.transport.resume_reading()


async def worker(job: dict[str, Any]) -> None:
    """Open the connections, join the room, then obey the coordinator's commands on stdin."""
    run.raise_open_file_limit()
    loop = asyncio.get_running_loop()
    tally = loadgen.Tally()
    target = loadgen.Target("127.0.0.1", job["port"], "/socket.io/")
    clients: list[loadgen.Connection | None] = [None] * job["count"]
    numbers = iter(range(job["count"]))
    failures: list[str] = []
    retries = 0

    async def opener() -> None:
        nonlocal retries
        for number in numbers:
            source = SOURCES[(job["first"] + number) % len(SOURCES)]
            for attempt in range(OPEN_TRIES):
                client = target.client(tally)
                try:
                    await open_from(target, client, source)
                except (OSError, loadgen.LoadError) as error:
                    retries += attempt + 1 < OPEN_TRIES
                    if len(failures) < 1000:
                        failures.append(f"{time.strftime('%H:%M:%S')} open #{number}: {type(error).__name__}: {error}")
                    continue
                clients[number] = client
                break
            if number % 2000 == 0:
                print(f"{time.strftime('%H:%M:%S')} opening #{number}", file=sys.stderr, flush=True)

    started_at = time.perf_counter()
    await asyncio.gather(*(opener() for _ in range(loadgen.OPEN_CONCURRENCY)))
    opened_s = time.perf_counter() - started_at
    for failure in failures:
        print(failure, file=sys.stderr, flush=True)
    held = [client for client in clients if client is not None]
    members = held[: job["room_count"]]
    pending = iter(members)

    async def joiner() -> None:
        for member in pending:
            if not gone(member):
                await member.call("join", job["room"])

    await asyncio.gather(*(joiner() for _ in range(loadgen.OPEN_CONCURRENCY)))
    print(json.dumps({
        "ready": len(held), "failed": job["count"] - len(held), "retries": retries, "open_s": opened_s,
        "first_failures": failures[:3],
    }), flush=True)  # fmt: skip

    commands = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    marks = [0] * len(held)
    while line := await commands.readline():
        command = json.loads(line)
        kind = command["cmd"]
        if kind == "round":
            try:
                stamps, lost = read_round(members if command["room"] else held, command["number"], command["limit"])
            except loadgen.LoadError as error:
                print(json.dumps({"errors": [str(error)]}), flush=True)
                continue
            print(json.dumps({"number": command["number"], "stamps": stamps, "lost": lost}), flush=True)
        elif kind == "mark":
            marks = [client.pings for client in held]
            print(json.dumps({"marked": len(marks)}), flush=True)
        elif kind == "status":
            is_open = sum(1 for client in held if not gone(client))
            pinged = sum(1 for client, mark in zip(held, marks) if client.pings > mark and not gone(client))
            reasons = sorted(set(tally.errors))[:3]
            print(json.dumps({"open": is_open, "lost": len(held) - is_open, "pinged": pinged, "errors": reasons}),
                  flush=True)  # fmt: skip
        elif kind == "close":
            await loadgen.close_all(held, 60)
            print(json.dumps({"closed": len(held)}), flush=True)
            return


def worker_main(spec: str) -> int:
    try:
        asyncio.run(worker(json.loads(spec)))
    except (OSError, loadgen.LoadError) as error:
        print(json.dumps({"errors": [f"{type(error).__name__}: {error}"]}), flush=True)
        return 1
    return 0


# -- the coordinator -------------------------------------------------------------


class Worker:
    """A worker process and the JSON lines it answers with."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    async def answer(self, limit: float) -> dict[str, Any]:
        line = await asyncio.wait_for(self.process.stdout.readline(), limit)  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"worker {self.process.pid} exited: {self.log.read_text()[-1500:]}")
        result = json.loads(line)
        if result.get("errors") and "ready" not in result:
            raise RuntimeError(f"worker {self.process.pid}: {result['errors']}")
        return result

    def tell(self, command: dict[str, Any]) -> None:
        self.process.stdin.write(json.dumps(command).encode() + b"\n")  # type: ignore[union-attr]


async def ask_all(workers: list[Worker], command: dict[str, Any], limit: float) -> list[dict[str, Any]]:
    for each in workers:
        each.tell(command)
    return list(await asyncio.gather(*(each.answer(limit) for each in workers)))


def cpu(pids: list[int]) -> float:
    return sum(loadgen.process_cpu_seconds(pid) for pid in pids)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


@dataclass
class Phase:
    """One deployment's figures."""

    key: str
    processes: int
    connections: int
    results: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def summarize(rounds: list[list[float]]) -> dict[str, Any]:
    """Per round, p50/p99/max over the members (ms); medians over the rounds, and the largest max."""
    per_round = []
    for deltas in rounds:
        deltas.sort()
        per_round.append(
            {
                "p50": loadgen.percentile(deltas, 0.5) * 1e3,
                "p99": loadgen.percentile(deltas, 0.99) * 1e3,
                "max": deltas[-1] * 1e3,
            }
        )
    return {
        "rounds": per_round,
        "p50_ms": statistics.median(r["p50"] for r in per_round),
        "p99_ms": statistics.median(r["p99"] for r in per_round),
        "max_ms": statistics.median(r["max"] for r in per_round),
        "worst_max_ms": max(r["max"] for r in per_round),
    }


def gc_figures(directory: Path | None, pids: list[int]) -> dict[str, Any] | None:
    """The rain_ws processes' garbage collections so far (``servers/rain_gc_asgi.py``), summed."""
    if directory is None:
        return None
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)  # write your figures now
    time.sleep(0.3)
    totals: dict[str, Any] = {"collections": 0, "cpu_s": 0.0, "full": 0, "full_cpu_s": 0.0, "pauses": []}
    for path in directory.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for generation in "012":
            totals["collections"] += data[generation]["count"]
            totals["cpu_s"] += data[generation]["cpu_s"]
        totals["full"] += data["2"]["count"]
        totals["full_cpu_s"] += data["2"]["cpu_s"]
        totals["pauses"] += data["full_pauses"]
    return totals


def gc_stage(before: dict[str, Any] | None, after: dict[str, Any] | None, start: float, end: float) -> dict[str, Any] | None:
    """Collections between two readings; the longest full collections that began between ``start`` and ``end``."""
    if before is None or after is None:
        return None
    pauses = [pause for pause in after["pauses"] if start <= pause[0] < end]
    return {
        "collections": after["collections"] - before["collections"],
        "cpu_s": after["cpu_s"] - before["cpu_s"],
        "full": after["full"] - before["full"],
        "full_cpu_s": after["full_cpu_s"] - before["full_cpu_s"],
        "longest_full_wall_ms": max((pause[1] for pause in pauses), default=0.0) * 1e3,
        "longest_full_cpu_ms": max((pause[2] for pause in pauses), default=0.0) * 1e3,
    }


def close_reasons(servers: list[Process]) -> dict[str, int]:
    """Why the servers closed connections, from their warnings (rain_ws logs each close it makes)."""
    reasons: dict[str, int] = {}
    for server in servers:
        for line in server.log_path.read_text(errors="replace").splitlines():
            found = re.search(r"closing \S+ \(code (\d+)\): (.*?)(?::|$)", line)
            if found:
                reason = f"{found.group(2)} ({found.group(1)})"
                reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


async def measure(
    args: argparse.Namespace,
    key: str,
    servers: list[Process],
    redis: Process,
    loadgen_prefix: list[str],
    logs: Path,
    gc_dir: Path | None,
    profile: list[str] | None,
) -> dict[str, Any]:
    """Connect, run the rounds, check the heartbeat, close: one deployment's figures."""
    pids = [server.pid for server in servers]
    counts = shares(args.connections, len(servers))
    room_counts = shares(args.room, len(servers))
    result: dict[str, Any] = {"load_at_start": load_average(), "per_process": counts, "gc": {}}
    workers: list[Worker] = []
    stage_start, gc_before = time.time(), gc_figures(gc_dir, pids)

    def stage(name: str) -> None:
        nonlocal stage_start, gc_before
        now, figures = time.time(), gc_figures(gc_dir, pids)
        if figures is not None:
            result["gc"][name] = gc_stage(gc_before, figures, stage_start, now)
        stage_start, gc_before = now, figures

    try:
        began = time.perf_counter()
        first = 0
        for index, (server, count, room_count) in enumerate(zip(servers, counts, room_counts)):
            job = {"port": server.port, "count": count, "first": first, "room": ROOM, "room_count": room_count}
            first += count
            log = logs / f"worker-{key}-{index}.log"
            with log.open("wb") as stderr:
                process = await asyncio.create_subprocess_exec(
                    *loadgen_prefix, sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, limit=64 << 20,
                )  # fmt: skip
            workers.append(Worker(process, log))
        ready = await asyncio.gather(*(each.answer(args.open_limit) for each in workers))
        result["open_s"] = time.perf_counter() - began
        result["held"] = sum(answer["ready"] for answer in ready)
        result["open_failed"] = sum(answer["failed"] for answer in ready)
        result["open_retries"] = sum(answer["retries"] for answer in ready)
        result["open_failures"] = [failure for answer in ready for failure in answer["first_failures"]][:3]
        stage("opening")
        print(f"[{key}] {result['held']:,} connections open in {result['open_s']:.1f} s "
              f"({result['open_retries']} retried, {result['open_failed']} failed), load {load_average()}",
              file=sys.stderr, flush=True)  # fmt: skip
        if not result["held"]:
            raise RuntimeError(f"no connection opened: {result['open_failures']}")

        tally = loadgen.Tally()
        sender = loadgen.Target("127.0.0.1", servers[0].port, "/socket.io/").client(tally)
        await loadgen.open_connection(loadgen.Target("127.0.0.1", servers[0].port, "/socket.io/"), sender)
        await asyncio.sleep(args.settle)
        result["rss_mib"] = sum(loadgen.rss_kib(pid) for pid in pids) / 1024

        # The heartbeat's CPU with nothing else going on, to take out of each round's.
        idle_start, idle_wall = cpu(pids), time.perf_counter()
        await asyncio.sleep(args.idle_window)
        idle_rate = (cpu(pids) - idle_start) / (time.perf_counter() - idle_wall)
        result["idle_cpu_share"] = idle_rate
        result["load_before_rounds"] = load_average()
        stage("holding")

        number = 0

        async def rounds(kind: str, warmup: int, measured: int, payload: Any) -> dict[str, Any]:
            nonlocal number
            deltas: list[list[float]] = []
            gross = net = redis_used = 0.0
            lost = 0
            for index in range(warmup + measured):
                number += 1
                for each in workers:
                    each.tell({"cmd": "round", "number": number, "room": kind == "room", "limit": args.round_limit})
                await asyncio.gather(*(each.answer(args.round_limit) for each in workers))  # armed
                cpu_before, redis_before = cpu(pids), loadgen.process_cpu_seconds(redis.pid)
                wall_before = time.perf_counter()
                fired = time.time_ns()
                sender.send(b"42" + json.dumps(payload(number)).encode())
                answers = await asyncio.gather(*(each.answer(args.round_limit + 30) for each in workers))
                window = time.perf_counter() - wall_before
                used = cpu(pids) - cpu_before
                used_by_redis = loadgen.process_cpu_seconds(redis.pid) - redis_before
                lost += sum(answer["lost"] for answer in answers)
                if index >= warmup:
                    deltas.append([(stamp - fired) / 1e9 for answer in answers for stamp in answer["stamps"]])
                    gross += used
                    net += used - idle_rate * window
                    redis_used += used_by_redis
                if tally.errors:
                    raise RuntimeError(f"sender: {tally.errors}")
                await asyncio.sleep(args.gap)
            summary = summarize(deltas)
            members = statistics.median(len(each) for each in deltas)
            summary.update(
                members=members,
                lost=lost,
                server_cpu_s=gross / measured,
                server_cpu_net_s=net / measured,
                us_per_delivery=gross / measured / members * 1e6,
                redis_cpu_ms=redis_used / measured * 1e3,
                load=load_average(),
            )
            print(f"[{key}] {kind}: p50 {summary['p50_ms']:.0f} / p99 {summary['p99_ms']:.0f} / max "
                  f"{summary['max_ms']:.0f} ms, {summary['server_cpu_s']:.2f} CPU s per round, {lost} lost, "
                  f"load {summary['load']}", file=sys.stderr, flush=True)  # fmt: skip
            stage(kind)
            return summary

        spy: list[subprocess.Popen[bytes]] = []
        if profile is not None:
            for index, pid in enumerate(pids):
                out = Path(profile[0]) / f"{key}-{index}.txt"
                spy.append(subprocess.Popen(
                    [profile[1], "record", "--pid", str(pid), "--rate", "250",
                     "--nonblocking", "--format", "raw", "--output", str(out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
        result["broadcast"] = await rounds(
            "broadcast", args.warmup, args.broadcast_rounds, lambda n: ["broadcast", n, loadgen.NEWS_DATA]
        )
        for each in spy:
            # py-spy writes its profile when interrupted, as on Ctrl-C.
            each.send_signal(signal.SIGINT)
            each.wait(60)
        result["room"] = await rounds(
            "room", args.warmup, args.room_rounds, lambda n: ["fanout", ROOM, n, loadgen.NEWS_DATA]
        )

        # Every connection must still be served: a ping from its server within
        # one interval (and a few seconds) after the last round, and none lost.
        await ask_all(workers, {"cmd": "mark"}, 30)
        await asyncio.sleep(args.ping_interval + PING_SLACK)
        statuses = await ask_all(workers, {"cmd": "status"}, 60)
        result.update(
            open_at_end=sum(status["open"] for status in statuses),
            pinged_after=sum(status["pinged"] for status in statuses),
            lost=sum(status["lost"] for status in statuses),
            worker_errors=sorted({error for status in statuses for error in status["errors"]})[:3],
            load_at_end=load_average(),
        )
        stage("after the rounds")
        print(f"[{key}] after the rounds: {result['open_at_end']:,} open, {result['pinged_after']:,} pinged, "
              f"{result['lost']} lost {result['worker_errors']}", file=sys.stderr, flush=True)  # fmt: skip
        await ask_all(workers, {"cmd": "close"}, 120)
        await loadgen.close_all([sender])
    finally:
        for each in workers:
            if each.process.returncode is None:
                each.process.terminate()
        for each in workers:
            try:
                await asyncio.wait_for(each.process.wait(), 30)
            except TimeoutError:
                each.process.kill()
                await each.process.wait()
        result["close_reasons"] = close_reasons(servers)
    for server in servers:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.label} exited:\n{server.log_tail()}")
    return result


def node_ready() -> str | None:
    """Why the Node deployment cannot run here, or None; installs bench/node from its lockfile when needed."""
    if shutil.which("node") is None:
        return "node is not installed"
    wanted = [run.NODE_DIR / "node_modules" / name for name in ("socket.io", "@socket.io/redis-adapter", "redis")]
    if not all(path.is_dir() for path in wanted):
        if shutil.which("npm") is None:
            return "bench/node is not installed and there is no npm: run `npm ci --prefix bench/node`"
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(run.NODE_DIR)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if done.returncode != 0:
            return f"`npm ci --prefix bench/node` failed: {done.stderr.strip()[-300:]}"
    return None


def server_command(
    key: str, port: int, redis_url: str, gc_dir: Path | None, args: argparse.Namespace
) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if key in RAIN_KEYS:
        # rain_asgi.py's application, its garbage collections timed.
        target = args.rain_application or "bench.servers.rain_gc_asgi:application"
        extra = ("--ws-ping-interval", "0") if key == RAIN_NO_WS_PING else ()
        spec = run.ServerSpec(key, LABELS[key], "uvicorn", target, extra)
        env.update(
            RAIN_GC_DIR=str(gc_dir),
            DJANGO_SETTINGS_MODULE="bench.servers.settings_cluster",
            BENCH_REDIS_URL=redis_url,
            RAIN_CLUSTER_PING_INTERVAL=str(args.ping_interval),
            RAIN_CLUSTER_PING_TIMEOUT=str(args.ping_timeout),
        )
        return spec.command(port), env
    interval, timeout = str(round(args.ping_interval * 1000)), str(round(args.ping_timeout * 1000))
    return ["node", str(run.NODE_DIR / "cluster.mjs"), str(port), redis_url, interval, timeout], env


def deploy(
    stack: ExitStack,
    key: str,
    processes: int,
    redis: Process,
    prefix: list[str],
    logs: Path,
    gc_dir: Path | None,
    args: argparse.Namespace,
) -> list[Process]:
    servers = []
    for number in range(processes):
        port = run.free_port()
        command, env = server_command(key, port, f"redis://127.0.0.1:{redis.port}/0", gc_dir, args)
        label = f"{LABELS[key]} #{number + 1}"
        servers.append(stack.enter_context(started(label, [*prefix, *command], port, env, logs)))
    return servers


# -- the section -----------------------------------------------------------------


def ratio(value: float | None, reference: float | None) -> str:
    return "–" if value is None or not reference else f"{value / reference:.2f}"


def ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def reasons_text(result: dict[str, Any]) -> str:
    reasons = result.get("close_reasons") or {}
    return "; ".join(f"{reason}: {count:,}" for reason, count in sorted(reasons.items(), key=lambda item: -item[1]))


def tables(phases: dict[str, dict[str, Any]], room: int) -> str:
    node = phases.get(NODE, {})
    held_rows, broadcast_rows, room_rows, gc_rows = [], [], [], []
    for key, result in phases.items():
        label = LABELS[key]
        if "error" in result:
            held_rows.append([label, "failed: " + result["error"].replace("\n", " ").replace("|", "/")[:300]])
            continue
        to_all, to_room = result["broadcast"], result["room"]
        node_all, node_room = node.get("broadcast", {}), node.get("room", {})
        held_rows.append([
            label, str(len(result["per_process"])), f"{result['held']:,}", f"{result['open_retries']:,}",
            f"{result['open_failed']:,}", f"{result['open_s']:.0f}", f"{result['open_at_end']:,}",
            f"{result['pinged_after']:,}", f"{result['lost']:,}", reasons_text(result) or "–",
            f"{result['rss_mib']:,.0f}", f"{result['idle_cpu_share'] * 100:.0f}%",
        ])  # fmt: skip
        for rows, figures, reference in ((broadcast_rows, to_all, node_all), (room_rows, to_room, node_room)):
            rows.append([
                label, f"{figures['members']:,.0f}", ms(figures["p50_ms"]), ms(figures["p99_ms"]),
                ms(figures["max_ms"]), ms(figures["worst_max_ms"]),
                ratio(figures["max_ms"], reference.get("max_ms")), ratio(figures["p50_ms"], reference.get("p50_ms")),
                f"{figures['server_cpu_s']:.2f}", f"{figures['us_per_delivery']:.1f}",
                f"{figures['server_cpu_net_s']:.2f}", f"{figures['redis_cpu_ms']:.0f}", f"{figures['lost']:,}",
                figures["load"],
            ])  # fmt: skip
        for name, figures in result["gc"].items():
            if figures is not None:
                gc_rows.append([
                    label, name, f"{figures['collections']:,}", f"{figures['cpu_s']:.1f}", f"{figures['full']:,}",
                    f"{figures['full_cpu_s']:.1f}", f"{figures['longest_full_cpu_ms']:,.0f}",
                    f"{figures['longest_full_wall_ms']:,.0f}",
                ])  # fmt: skip
    held = run.markdown(
        ["deployment", "processes", "connections opened", "opens retried", "opens failed", "open s",
         "open after the rounds", "pinged after the rounds", "lost", "closed by the servers, why (code)",
         "server RSS MiB, all processes", "heartbeat CPU, idle (one core = 100%)"],
        held_rows,
    )  # fmt: skip
    header = [
        "deployment", "members", "p50 ms", "p99 ms", "max ms", "worst max ms", "max × Node", "p50 × Node",
        "server CPU s per emit", "server CPU µs per delivery", "net of the idle rate, s (estimate)",
        "redis-server CPU ms per emit",
        "connections lost in the rounds", "load (1/5/15 min)",
    ]  # fmt: skip
    parts = [
        held,
        "**Broadcast to every connection** (`socket.broadcast.emit`): medians over the rounds of each round's "
        "p50, p99 and max over the members; *worst max* is the largest over the rounds.",
        run.markdown(header, broadcast_rows),
        f"**Room of {room:,} spread over the processes** (`socket.to(room).emit`), with every connection held:",
        run.markdown(header, room_rows),
    ]
    if gc_rows:
        parts += [
            "**Python's garbage collector in the rain_ws processes** (`servers/rain_gc_asgi.py`), summed over "
            "them, by stage: *opening* until every connection is open, *holding* the settling and the idle "
            "window, then the rounds and the heartbeat check after them. A collection stops its process's event "
            "loop: *longest full* is the longest full collection of any process, in its CPU time and in wall "
            "time (longer when the core is shared).",
            run.markdown(
                ["deployment", "stage", "collections", "GC CPU s", "full collections", "full: CPU s",
                 "longest full: CPU ms", "longest full: wall ms"],
                gc_rows,
            ),
        ]  # fmt: skip
    return "\n\n".join(parts)


def verdict(phases: dict[str, dict[str, Any]], connections: int) -> list[str]:
    node = phases.get(NODE, {})
    lines = []
    for key in RAIN_KEYS:
        rain = phases.get(key, {})
        if "broadcast" not in rain:
            continue
        held = (
            rain["held"] == connections
            and rain["open_at_end"] == connections
            and rain["lost"] == 0
            and rain["pinged_after"] == connections
        )
        lines.append(
            f"- {LABELS[key]}: every connection held, none dropped by heartbeats ({rain['held']:,} of "
            f"{connections:,} opened, {rain['open_at_end']:,} open and {rain['pinged_after']:,} pinged after the "
            f"rounds, {rain['lost']:,} lost): **{'met' if held else 'missed'}**"
        )
        if "broadcast" in node:
            times = rain["broadcast"]["max_ms"] / node["broadcast"]["max_ms"]
            lines.append(
                f"- {LABELS[key]}: broadcast completion (median of the rounds' max) within 1.5 × Node socket.io's: "
                f"{ms(rain['broadcast']['max_ms'])} ms against {ms(node['broadcast']['max_ms'])} ms, "
                f"{times:.2f}x: **{'met' if times <= 1.5 else 'missed'}**"
            )
    if "broadcast" in node:
        held = node["held"] == connections and node["open_at_end"] == connections and node["lost"] == 0
        lines.append(
            f"- {LABELS[NODE]}, for reference: {node['open_at_end']:,} of {connections:,} open and "
            f"{node['pinged_after']:,} pinged after the rounds, {node['lost']:,} lost"
        )
    return lines


def section(phases: dict[str, dict[str, Any]], facts: dict[str, str], args: argparse.Namespace) -> str:
    listed = "\n".join(f"- {name}: {value}" for name, value in facts.items())
    targets = "\n".join(verdict(phases, args.connections))
    return f"""{SECTION_TITLE}

{args.connections:,} WebSocket connections held by several server processes
sharing one redis-server, from one run of `.venv/bin/python bench/cluster.py`
(see README.md): rain_ws on uvicorn with `RedisPubSubChannelLayer`; Node
socket.io with `@socket.io/redis-adapter`; rain_ws again with uvicorn's own
WebSocket pings off (`--ws-ping-interval 0`; Engine.IO's heartbeat is on in
every deployment). Each deployment runs alone, on fresh processes, the same
number each, every process on its own port with an equal share of the
connections. A process may not hold more than the open-file limit here
(20,000, the hard limit, which cannot be raised on this machine), hence the
processes; the load generator is as many worker processes, bound to the
source addresses 127.0.0.2-127.0.0.9. A connection that has not opened
within {OPEN_LIMIT:g} s is aborted and opened afresh, up to {OPEN_TRIES} tries. Every server
process and redis-server share one core (`taskset -c 1`), the load
generators the other: the processes' work is serial here, so a broadcast's
time is close to the CPU time all of them spend on it, and other work on
that core stretches it (the load averages count this benchmark's own
processes too: thirteen while a deployment holds its connections). The
sender, on the first process, emits once per round; a member's time is from
just before that emit to the kernel's receive stamp of its `news`. *Server
CPU per emit* is the CPU time of all the deployment's server processes from
the emit to the last member's receipt, so it includes what they spent
meanwhile on heartbeats and (rain_ws) garbage collection; per delivery,
divided by the members. *Net of
the idle rate* takes away the processes' CPU rate measured over
{args.idle_window:g} s with only the heartbeat running (the *heartbeat CPU*
column): an estimate only, off by much when a full garbage collection falls
in that window or in a round (see the last table). A connection the server
closes is counted as lost and left out of later rounds. Every connection
must still be open after the rounds and have had a ping within one ping
interval and {PING_SLACK:g} s after them. The rain_ws processes time their garbage
collections (`servers/rain_gc_asgi.py`).

Targets:

{targets}

{tables(phases, args.room)}

{listed}
"""


# -- main --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 processes, 300 connections, short heartbeat; writes nothing")
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--processes", type=int, help="server processes per deployment (default: as the open-file limit needs)")
    parser.add_argument("--room", type=int, default=10_000, help="members of the room spread over the processes")
    parser.add_argument("--broadcast-rounds", type=int, default=10)
    parser.add_argument("--room-rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured rounds before each kind")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument("--deployments", default=f"{RAIN},{NODE},{RAIN_NO_WS_PING}")
    parser.add_argument("--profile", metavar="DIR", help="record the rain_ws servers with py-spy during the broadcasts (figures are then not written)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--limit", type=float, default=2700, help="seconds the whole run may take")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write every figure there, as JSON")
    parser.add_argument("--logs", metavar="DIR", help="keep the servers' and workers' logs there (default: a temporary directory)")
    parser.add_argument("--rain-application", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        return worker_main(args.worker)

    args.ping_interval, args.ping_timeout = PING_INTERVAL, PING_TIMEOUT
    args.settle, args.idle_window, args.open_limit, args.round_limit = 5.0, 20.0, 600.0, 60.0
    if args.quick:
        args.connections, args.room, args.broadcast_rounds, args.room_rounds, args.warmup = 300, 50, 2, 2, 1
        args.processes = args.processes or 2
        args.ping_interval, args.ping_timeout, args.gap = 2.0, 5.0, 0.1
        args.settle, args.idle_window, args.round_limit = 0.5, 1.0, 20.0
        args.no_write = True
    hard = run.raise_open_file_limit()
    processes = args.processes or max(2, math.ceil(args.connections / (hard - FD_MARGIN)))
    if math.ceil(args.connections / processes) > hard - FD_MARGIN:
        print(f"{args.connections:,} connections on {processes} processes exceed the open-file limit ({hard:,})",
              file=sys.stderr)  # fmt: skip
        return 1
    if len(SOURCES) * 28_000 < args.connections:
        print("too many connections for the source addresses' ephemeral ports", file=sys.stderr)
        return 1
    if shutil.which("redis-server") is None:
        print("redis-server is not installed: run `apt-get install -y --no-install-recommends redis-server`",
              file=sys.stderr)  # fmt: skip
        return 1
    keys = [key for key in args.deployments.split(",") if key]
    skipped = {}
    if NODE in keys and (reason := node_ready()) is not None:
        skipped[NODE] = reason
        keys.remove(NODE)
    loadgen_prefix, server_prefix = ([], []) if args.quick else run.pinning()
    if loadgen_prefix:
        os.sched_setaffinity(0, {int(loadgen_prefix[-1])})
    profile = None
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        profile = [args.profile, args.py_spy]
        args.no_write = True

    started_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_at_start = load_average()
    began = time.monotonic()
    phases: dict[str, dict[str, Any]] = {}
    deadline = began + args.limit
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as directory, ExitStack() as outer:
        logs = Path(args.logs or directory)
        logs.mkdir(parents=True, exist_ok=True)
        redis = outer.enter_context(redis_server(server_prefix, logs))
        for key in keys:
            gc_dir = None
            if key in RAIN_KEYS:
                gc_dir = logs / f"gc-{key}"
                gc_dir.mkdir(exist_ok=True)
            with ExitStack() as stack:
                try:
                    servers = deploy(stack, key, processes, redis, server_prefix, logs, gc_dir, args)
                    left = deadline - time.monotonic()
                    job = measure(
                        args, key, servers, redis, loadgen_prefix, logs, gc_dir, profile if key in RAIN_KEYS else None
                    )
                    phases[key] = asyncio.run(asyncio.wait_for(job, max(left, 1)))
                except (RuntimeError, OSError, TimeoutError, KeyError, ValueError) as error:
                    phases[key] = {"error": f"{type(error).__name__}: {error}"}
                    print(f"[{key}] failed: {phases[key]['error']}", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - began

    print()
    print(tables(phases, args.room))
    print()
    print("\n".join(verdict(phases, args.connections)))
    for key, reason in skipped.items():
        print(f"\n{LABELS[key]} skipped: {reason}")
    print(f"\n{elapsed:.0f} s in all", file=sys.stderr)
    failed = any("error" in result for result in phases.values())
    if args.json:
        Path(args.json).write_text(json.dumps({"phases": phases, "skipped": skipped}, indent=1, default=str))
    if args.no_write:
        return 1 if failed else 0
    if failed or skipped:
        print(f"{RESULTS.relative_to(ROOT)} not written: it needs every deployment, all successful", file=sys.stderr)
        return 1
    versions = {name: importlib.metadata.version(name) for name in ("channels", "channels-redis", "redis", "uvicorn")}
    node_versions = {}
    for package in ("socket.io", "@socket.io/redis-adapter", "redis"):
        manifest = run.NODE_DIR / "node_modules" / package / "package.json"
        node_versions[package] = json.loads(manifest.read_text())["version"]
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    facts = {
        "run on": started_at,
        "machine": f"{run.machine()['CPU']}, {os.cpu_count()} cores, {run.machine()['memory']}",
        "load average (1/5/15 min)": f"{load_at_start} at the start, "
        + "; ".join(f"{LABELS[key]}: {result.get('load_at_start')} before opening, {result.get('load_at_end')} at the end"
                    for key, result in phases.items()),
        "rain_ws source": f"git {run.source_revision()}",
        "processes": f"{processes} server processes per deployment, each on its own port, "
        f"{', '.join(f'{count:,}' for count in shares(args.connections, processes))} connections; "
        f"{processes} load generator processes, one per server process; open-file limit {hard:,} per process",
        "pinning": f"server processes and redis-server `{' '.join(server_prefix)}`, load generators and the "
        f"sender `{' '.join(loadgen_prefix)}`" if server_prefix else "none",
        "heartbeat": f"ping interval {args.ping_interval:g} s, timeout {args.ping_timeout:g} s (both servers' default)",
        "rounds": f"{args.broadcast_rounds} broadcasts and {args.room_rounds} room emits, each after "
        f"{args.warmup} unmeasured, {args.gap:g} s apart once every member had the previous one",
        "uvicorn": " ".join(run.UVICORN_OPTIONS) + " --no-access-log --log-level warning --lifespan off",
        "software": ", ".join(f"{name} {version}" for name, version in versions.items())
        + f", redis-server {redis_version()} (no persistence), node {node_version}, "
        + ", ".join(f"{name} (npm) {version}" for name, version in node_versions.items()),
        "duration": f"{elapsed / 60:.1f} min",
    }
    run.write_section(SECTION_TITLE, section(phases, facts, args))
    print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
