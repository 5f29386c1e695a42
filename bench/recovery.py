"""
Connection state recovery and drains: what recovery costs per event and per
logged entry, and how clients come back when a process is drained or stopped.

Three parts, in one run, all on rain_ws on uvicorn (``run.py``'s command
line) with ``bench/servers/settings_recovery.py`` (the echo component plus
``reflect``, which answers with ``socket.emit``):

- ``cpu``: server CPU per event with ``RECOVERY_WINDOW`` 0 and 120 s (and,
  with ``--compare-to REV``, rain_ws at commit ``REV``, which has no
  recovery code at all), servers started together, the runs interleaved:
  (a) 50 clients each emit ``reflect`` and wait for ``reflected``, which the
  listener sends back with ``socket.emit`` (an event that carries an offset
  and is logged, when recovery is on); (b) a fan-out to a room of 1,000
  sockets (``socket.to(room).emit``): server CPU per delivered event.
- ``memory``: a fresh server with recovery on; N sockets join a room and
  their connections drop (each leaves a stand-in that logs what the room is
  sent), then M events are sent to the room: RSS growth per log entry
  (N x M of them), and a sample of the sockets recovered to check that each
  gets the M events back.
- ``drain``: two processes on a RedisPubSubChannelLayer; N clients of the
  official socket.io-client (node, ``tests/js/node_modules``) connected to
  the first, in one room that a client on the second sends an event to every
  100 ms. Then the first is drained (``manage.py rain_ws_drain --pid``) or
  stopped (SIGTERM), with recovery off and on; every client reconnects to
  the second (its Manager's URL is switched when it loses its connection, as
  a load balancer would send it to a process still up). Reconnects per
  100 ms, the time until all are back, how many were recovered, and the
  events each client missed.

Usage, from the repository root::

    .venv/bin/python bench/recovery.py                          # two to three minutes; writes its section of RESULTS.md
    .venv/bin/python bench/recovery.py --compare-to 37b0c4b     # also rain_ws before recovery, in the cpu part
    .venv/bin/python bench/recovery.py --quick                  # tiny, unpinned; writes nothing

Linux only (``/proc``, ``taskset``). The drain part needs ``redis-server``
and node with ``tests/js/node_modules``; it is skipped, and says why, without.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen, run  # noqa: E402
from bench.svg import COLOURS, escape, nice_step  # noqa: E402

RESULTS = run.RESULTS
SVG = BENCH / "recovery.svg"
SECTION_TITLE = "## Recovery and drain"
SETTINGS = "bench.servers.settings_recovery"
SPEC = run.SERVERS_BY_KEY[run.RAIN_UVICORN]
TESTS_JS = ROOT / "tests" / "js"
#: RECOVERY_WINDOW when recovery is on, in seconds.
WINDOW = 120.0
#: What ``reflect`` carries, and what ``reflected`` must carry back.
ARGS = loadgen.ECHO_ARGS
REFLECT = b"42" + json.dumps(["reflect", *ARGS], separators=(",", ":")).encode()
REFLECTED = '42["reflected",'
REFLECTED_BODY = REFLECTED + json.dumps(ARGS, separators=(",", ":"))[1:-1]
NEWS = '42["news",'
BUCKET = 0.1  # seconds: the reconnect curve's resolution


@dataclass(frozen=True)
class Sizes:
    """How big each part is."""

    runs: int
    connections: int
    warmup: float
    window: float
    room: int
    rounds: int
    stand_ins: int
    events: int
    samples: int
    clients: int
    drain_batch: int | None  # None: rain_ws's default
    drain_interval: float | None
    cases: tuple[str, ...]


FULL = Sizes(
    6, 50, 0.5, 1.5, 1000, 60, 1000, 1000, 10, 1000, None, None, ("drain-off", "drain-on", "stop-off", "stop-on")
)
QUICK = Sizes(1, 2, 0.2, 1.0, 20, 5, 50, 50, 2, 40, 10, 0.2, ("drain-on", "stop-on"))

CASES = {
    "drain-off": ("drained, recovery off", "drain", 0.0),
    "drain-on": ("drained, recovery on", "drain", WINDOW),
    "stop-off": ("stopped (SIGTERM), recovery off", "stop", 0.0),
    "stop-on": ("stopped (SIGTERM), recovery on", "stop", WINDOW),
}


# -- servers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A server of the cpu part: which rain_ws, and its recovery window."""

    key: str
    label: str
    window: float | None  # None: the setting left out (a rain_ws without recovery)
    source: Path | None = None  # a directory holding another revision's rain_ws/

    def environment(self) -> dict[str, str]:
        env = {"DJANGO_SETTINGS_MODULE": SETTINGS}
        if self.window is not None:
            env["BENCH_RECOVERY_WINDOW"] = str(self.window)
        if self.source is not None:
            env["PYTHONPATH"] = f"{self.source}{os.pathsep}{ROOT}"
        return env


@contextmanager
def revision(rev: str) -> Iterator[Path]:
    """rain_ws/ of commit ``rev`` (``git archive``), in a temporary directory removed on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-recovery-rev-") as directory:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", rev, "rain_ws"], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", directory], input=archive.stdout, check=True)
        yield Path(directory)


def target_of(running: run.Running) -> loadgen.Target:
    return loadgen.Target("127.0.0.1", running.port, "/socket.io/")


# -- the cpu part ------------------------------------------------------------------


class Reflector(loadgen.Connection):
    """A client that emits ``reflect`` and, once ``reflected`` comes back, emits again."""

    offsets = 0

    def emit(self) -> None:
        self.waiting_id = 0
        self.sent_at = time.perf_counter()
        self.send(REFLECT)

    def _on_text(self, text: str) -> None:
        if not text.startswith(REFLECTED):
            super()._on_text(text)
            return
        now = time.perf_counter()
        rest = text[len(REFLECTED_BODY) :] if text.startswith(REFLECTED_BODY) else None
        if rest != "]":
            if rest is not None and rest.startswith(',"') and rest.endswith('"]'):
                self.offsets += 1
            else:
                data = json.loads(text[2:])
                if data[1 : 1 + len(ARGS)] != ARGS or len(data) > len(ARGS) + 2:
                    raise loadgen.LoadError(f"reflected does not carry the arguments: {text[:200]!r}")
                if len(data) == len(ARGS) + 2:
                    self.offsets += 1
        self.waiting_id = None
        if self.tally.answered(self.sent_at, now):
            self.emit()


async def reflect_window(server: run.Running, sizes: Sizes) -> dict[str, Any]:
    """Fresh clients emit ``reflect`` in a loop; server CPU per event over the window."""
    target = target_of(server)
    tally = loadgen.Tally()
    clients = [Reflector(tally, target.host, target.port, target.path) for _ in range(sizes.connections)]
    try:
        await loadgen.open_all(target, clients)
        for client in clients:
            client.emit()
        await asyncio.sleep(sizes.warmup)
        meter = loadgen.CpuMeter(server.process.pid)
        before = tally.acks
        tally.recording = True
        await asyncio.sleep(sizes.window)
        tally.recording = False
        window, used, own = meter.read()
        events = tally.acks - before
        at_end = tally.acks
        tally.running = False
        deadline = time.monotonic() + 2
        while any(client.waiting_id is not None for client in clients) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await leave(clients)
    latencies = sorted(tally.latencies)
    return {
        "events": events,
        "events_per_s": events / window,
        "server_cpu_us_per_event": used * 1e6 / events if events else float("nan"),
        "server_cpu_share": used / window,
        "loadgen_cpu_share": own / window,
        "p50_ms": loadgen.percentile(latencies, 0.5) * 1e3,
        "with_offset": sum(client.offsets for client in clients),
        # Each is one entry of the socket's replay log with recovery on (bounded by RECOVERY_MAX_EVENTS).
        "events_per_socket_at_start": before / len(clients),
        "events_per_socket_at_end": at_end / len(clients),
        "errors": tally.errors,
    }


async def leave(clients: list[loadgen.Connection]) -> None:
    """
    Disconnect the main namespace (for good: no stand-in is left, as one
    would be after a bare close with recovery on), then close.
    """
    for client in clients:
        if client.transport is not None and not client.transport.is_closing() and client.connected.done():
            client.send(b"41")
    await loadgen.close_all(clients)


class Audience:
    """A room of members held on one server for the whole cpu part, and the sender that fans out to it."""

    def __init__(self, server: run.Running, size: int) -> None:
        self.server = server
        self.target = target_of(server)
        self.tally = loadgen.Tally()
        self.members = [self.target.client(self.tally) for _ in range(size)]
        self.sender = self.target.client(self.tally)
        self.room = f"audience-{server.port}"
        self.number = 0

    async def open(self) -> None:
        await loadgen.open_all(self.target, self.members)
        await loadgen.open_connection(self.target, self.sender)
        pending = iter(self.members)

        async def join() -> None:
            for member in pending:
                await member.call("join", self.room)

        await asyncio.gather(*(join() for _ in range(min(loadgen.OPEN_CONCURRENCY, len(self.members)))))

    async def batch(self, rounds: int, warmup: int = 3, gap: float = 0.005) -> dict[str, Any]:
        """``rounds`` fan-outs, after ``warmup`` unmeasured ones: server CPU per delivered event."""
        with loadgen.Room(self.members, self.tally) as readers:
            meter = None
            for count in range(warmup + rounds):
                if count == warmup:
                    meter = loadgen.CpuMeter(self.server.process.pid)
                self.number += 1
                payload = b"42" + json.dumps(["fanout", self.room, self.number, loadgen.NEWS_DATA]).encode()
                readers.round(self.number, lambda: self.sender.send(payload), limit=30)
                await asyncio.sleep(gap)
            assert meter is not None
            window, used, _ = meter.read()
        deliveries = rounds * len(self.members)
        return {
            "deliveries": deliveries,
            "server_cpu_us_per_delivery": used * 1e6 / deliveries,
            "server_cpu_share": used / window,
            "errors": list(self.tally.errors),
        }

    async def close(self) -> None:
        await loadgen.close_all([*self.members, self.sender])


async def cpu_part(servers: list[tuple[Variant, run.Running]], sizes: Sizes) -> dict[str, list[dict[str, Any]]]:
    """Every variant in turn, run after run (the order rotated each run); results by variant, run by run."""
    results: dict[str, list[dict[str, Any]]] = {variant.key: [] for variant, _ in servers}
    audiences = {variant.key: Audience(running, sizes.room) for variant, running in servers}
    try:
        for audience in audiences.values():
            await audience.open()
        for number in range(sizes.runs):
            shift = number % len(servers)
            order = servers[shift:] + servers[:shift]
            found: dict[str, dict[str, Any]] = {variant.key: {"load": os.getloadavg()[0]} for variant, _ in servers}
            for variant, running in order:
                echo = await reflect_window(running, sizes)
                found[variant.key].update({f"reflect_{key}": value for key, value in echo.items() if key != "errors"})
                found[variant.key]["errors"] = list(echo["errors"])
            for variant, running in order:
                fan = await audiences[variant.key].batch(sizes.rounds)
                found[variant.key].update({f"fanout_{name}": value for name, value in fan.items() if name != "errors"})
                found[variant.key]["errors"] += fan["errors"]
            for variant, running in servers:
                if running.process.poll() is not None:
                    found[variant.key]["errors"].append(f"server exited:\n{running.log_tail()}")
                results[variant.key].append(found[variant.key])
                row = found[variant.key]
                print(
                    f"cpu run {number + 1}, {variant.label}: reflect {row['reflect_server_cpu_us_per_event']:.1f} "
                    f"µs/event (offsets: {'yes' if row['reflect_with_offset'] else 'no'}), fan-out "
                    f"{row['fanout_server_cpu_us_per_delivery']:.2f} µs/delivery {row['errors'][:1]}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for audience in audiences.values():
            await audience.close()
    return results


def replay_costs(repeat: int = 5, number: int = 20_000) -> dict[str, float]:
    """
    rain_ws.replay's own work per event, timed in this process, µs (best of
    ``repeat``, garbage collector on): encoding ``reflected`` as recovery
    off does (``protocol.encode_packet``); and as recovery on does, with an
    offset (``Replay.encode``, which makes the entry) and added to a socket's
    log, round-robin over 50 logs (the 50 clients of *reflect*), below the
    logs' bound and at it (each entry added drops the oldest).
    """
    from rain_ws import protocol
    from rain_ws.replay import Replay

    replay = Replay("0a1b2c3d", 1000, 1 << 20)
    data = ["reflected", *ARGS]
    below = [replay.new_log() for _ in range(50)]
    full = [replay.new_log() for _ in range(50)]
    for log in full:
        for _ in range(replay.max_events):
            log.add(replay.encode("/", data))
    turn = [0]

    def plain() -> None:
        protocol.encode_packet(protocol.EVENT, "/", data)

    def logged_below() -> None:
        log = below[turn[0] % 50]
        turn[0] += 1
        log.add(replay.encode("/", data))
        if len(log.entries) == replay.max_events // 2:
            log.confirm(replay.seq)

    def logged_at_bound() -> None:
        log = full[turn[0] % 50]
        turn[0] += 1
        log.add(replay.encode("/", data))

    def best(function: Any) -> float:
        timings = timeit.repeat(function, "gc.enable()", number=number, repeat=repeat, globals={"gc": gc})
        return min(timings) / number * 1e6

    return {
        "plain_us": best(plain),
        "logged_below_us": best(logged_below),
        "logged_at_bound_us": best(logged_at_bound),
    }


def replay_costs_text(costs: dict[str, float]) -> str:
    return (
        f"`rain_ws.replay` timed in process (best of 5, garbage collector on): encoding `reflected` takes "
        f"{costs['plain_us']:.2f} µs with recovery off; with recovery on, encoding it with an offset and adding it "
        f"to its socket's log takes {costs['logged_below_us']:.2f} µs below the log's bound and "
        f"{costs['logged_at_bound_us']:.2f} µs at it (50 logs of 1,000 entries, each add dropping the oldest): "
        f"{costs['logged_below_us'] - costs['plain_us']:+.2f} and "
        f"{costs['logged_at_bound_us'] - costs['plain_us']:+.2f} "
        "µs per event, without the rest of the server around it."
    )


# -- the memory part ----------------------------------------------------------------


class Member(loadgen.Connection):
    """A client that keeps the private id (``pid``) of its CONNECT reply."""

    pid: str | None = None

    def _on_text(self, text: str) -> None:
        if text.startswith("40{"):
            self.pid = json.loads(text[2:]).get("pid")
        super()._on_text(text)


class Recovering(loadgen.Connection):
    """A client that reconnects a socket by its ``pid`` and counts the ``news`` it is sent."""

    def __init__(self, tally: loadgen.Tally, target: loadgen.Target, pid: str) -> None:
        super().__init__(tally, target.host, target.port, target.path)
        self.asked = pid
        self.answered: str | None = None
        self.received = 0

    def _on_text(self, text: str) -> None:
        if text.startswith("0{"):
            self.opened_at = time.perf_counter()
            self.send(b"40" + json.dumps({"pid": self.asked}).encode())
        elif text.startswith("40{"):
            self.answered = json.loads(text[2:]).get("pid")
            if not self.connected.done():
                self.connected.set_result(None)
        elif text.startswith(NEWS):
            self.received += 1
        else:
            super()._on_text(text)


async def memory_part(server: run.Running, sizes: Sizes) -> dict[str, Any]:
    """
    N sockets join a room and drop their connections (stand-ins take their
    place), then the room is sent M events: RSS growth per log entry.
    """
    pid = server.process.pid
    target = target_of(server)
    tally = loadgen.Tally()
    room = "gone"
    # Whatever the server sets up on its first connections and emits is in the baseline.
    warm = [target.client(tally) for _ in range(100)]
    await loadgen.open_all(target, warm)
    await warm[0].call("fanout", "nobody", 0, loadgen.NEWS_DATA)
    await loadgen.close_all(warm)
    members = [Member(tally, target.host, target.port, target.path) for _ in range(sizes.stand_ins)]
    sender = target.client(tally)
    samples: list[Recovering] = []
    try:
        await loadgen.open_all(target, members)
        await loadgen.open_connection(target, sender)
        pending = iter(members)

        async def join() -> None:
            for member in pending:
                await member.call("join", room)

        await asyncio.gather(*(join() for _ in range(min(loadgen.OPEN_CONCURRENCY, len(members)))))
        # Gone without a closing handshake ("transport close"): each leaves a stand-in.
        for member in members:
            member.closing = True
            member.transport.abort()
        # The same number of events to a room nobody is in, so that what a
        # fan-out allocates once (and keeps) is in the baseline too.
        for chunk in range(0, sizes.events, 100):
            for number in range(chunk, min(chunk + 100, sizes.events)):
                sender.send(b"42" + json.dumps(["fanout", "nobody", number, loadgen.NEWS_DATA]).encode())
            await sender.call("join", "sync")
        before = await loadgen.settled_rss(pid, 20)
        meter = loadgen.CpuMeter(pid)
        for chunk in range(0, sizes.events, 100):
            for number in range(chunk, min(chunk + 100, sizes.events)):
                sender.send(b"42" + json.dumps(["fanout", room, number, loadgen.NEWS_DATA]).encode())
            # Acked once every event before it was handled: one socket's events are handled in order.
            await sender.call("join", "sync")
        _, used, _ = meter.read()
        after = await loadgen.settled_rss(pid, 20)
        entries = sizes.stand_ins * sizes.events
        # A sample of the sockets, recovered: each must get the M events back.
        step = max(1, len(members) // sizes.samples)
        chosen = members[::step][: sizes.samples]
        samples = [Recovering(tally, target, member.pid or "") for member in chosen]
        await loadgen.open_all(target, samples)
        deadline = time.monotonic() + 20
        while any(sample.received < sizes.events for sample in samples) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        recovered = sum(1 for sample in samples if sample.answered == sample.asked)
        replayed = [sample.received for sample in samples]
    finally:
        await loadgen.close_all([sender, *samples])
    errors = list(tally.errors)
    if recovered != len(samples) or any(count != sizes.events for count in replayed):
        errors.append(
            f"of {len(samples)} sockets reconnected, {recovered} were recovered; events replayed: {replayed} "
            f"(expected {sizes.events} each)"
        )
    return {
        "stand_ins": sizes.stand_ins,
        "events": sizes.events,
        "entries": entries,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "bytes_per_entry": (after - before) * 1024 / entries,
        "server_cpu_us_per_logged": used * 1e6 / entries,
        "samples": len(samples),
        "recovered": recovered,
        "replayed": replayed,
        "shared_entry_bytes": shared_entry_bytes(),
        "errors": errors,
    }


def shared_entry_bytes() -> int:
    """
    The size of one replay-log entry as rain_ws.replay makes it (a tuple of
    the sequence number, the offset, the encoded text, the binary frames and
    the size) for a ``news`` event of this benchmark: made once per emit,
    whatever the number of logs that hold it.
    """
    offset = "0a1b2c3d.3e8"
    text = "42" + json.dumps(["news", 999, loadgen.NEWS_DATA, offset], separators=(",", ":"))
    entry = (100_000, offset, text, [], len(text) * 1000)
    return sum(sys.getsizeof(part) for part in (entry, *entry))


# -- the drain part ------------------------------------------------------------------

#: The clients of the drain part, run by node from tests/js (whose node_modules
#: has socket.io-client). Configuration in BENCH_RECOVERY_CLIENTS (JSON); it
#: prints one JSON object per line: {"step": "ready"} once every member is in
#: the room, then {"step": "done", ...} with what each member saw.
CLIENTS_JS = r"""
const { io } = require("socket.io-client");
const config = JSON.parse(process.env.BENCH_RECOVERY_CLIENTS);
const now = () => performance.timeOrigin + performance.now();
const say = (fields) => process.stdout.write(JSON.stringify(fields) + "\n");
const options = { forceNew: true, transports: ["websocket"] };
const members = [];
let sent = 0;
let ticker = null;

function finished(member) {
  return member.back !== null && (member.recovered || member.rejoined !== null);
}

function member() {
  return new Promise((resolve, reject) => {
    const socket = io(config.first, options);
    const seen = { socket, received: [], connects: 0, lost: null, reason: null, back: null, recovered: false,
                   rejoined: null, highest: -1, errors: [] };
    members.push(seen);
    socket.on("news", (number) => {
      seen.received.push(number);
      if (number > seen.highest) seen.highest = number;
    });
    socket.on("connect", () => {
      seen.connects += 1;
      if (seen.connects === 1) {
        socket.emit("join", config.room, () => resolve());
        return;
      }
      seen.back = now();
      // undefined, not false, when the server does not offer recovery.
      seen.recovered = socket.recovered === true;
      if (seen.recovered) {
        check();
      } else {
        socket.emit("join", config.room, () => { seen.rejoined = now(); check(); });
      }
    });
    socket.on("disconnect", (reason) => {
      if (seen.lost === null) {
        seen.lost = now();
        seen.reason = reason;
        // Where a load balancer would send it: the process still up.
        socket.io.uri = config.second;
      }
    });
    socket.on("connect_error", (error) => {
      if (seen.connects === 0) reject(error);
      else if (seen.errors.length < 3) seen.errors.push(String(error.message || error));
    });
  });
}

let reported = false;
function check() {
  if (!reported && members.every(finished)) {
    reported = true;
    setTimeout(report, config.tail_ms);
  }
}

// Once the sender stops, wait until every member has the last event it sent
// (one socket's events come in order), or settle_ms: events the server is
// still working through are late, not missed.
function report() {
  clearInterval(ticker);
  const stopped = now();
  const caughtUp = () => sent === 0 || members.every((seen) => seen.highest >= sent - 1);
  const wait = setInterval(() => {
    if (!caughtUp() && now() - stopped < config.settle_ms) return;
    clearInterval(wait);
    const late = now() - stopped;
    const rows = members.map((seen) => {
      const unique = new Set(seen.received);
      let missed = 0;
      for (let number = 0; number < sent; number += 1) if (!unique.has(number)) missed += 1;
      let disorder = 0;
      for (let index = 1; index < seen.received.length; index += 1) {
        if (seen.received[index] < seen.received[index - 1]) disorder += 1;
      }
      return { lost: seen.lost, reason: seen.reason, back: seen.back, recovered: seen.recovered,
               rejoined: seen.rejoined, missed, duplicates: seen.received.length - unique.size, disorder,
               errors: seen.errors };
    });
    for (const seen of members) seen.socket.disconnect();
    sender.disconnect();
    // Exit once the report is written out: a pipe may take it in several writes.
    const done = { step: "done", sent, complete: members.every(finished), caught_up: caughtUp(), late, members: rows };
    process.stdout.write(JSON.stringify(done) + "\n", () => process.exit(0));
  }, 20);
}

const sender = io(config.second, options);

async function main() {
  await new Promise((resolve, reject) => {
    sender.once("connect", resolve);
    sender.once("connect_error", reject);
  });
  const pending = Array.from({ length: config.count }, (_, index) => index);
  async function worker() {
    while (pending.length) {
      pending.pop();
      await member();
    }
  }
  await Promise.all(Array.from({ length: Math.min(config.concurrency, config.count) }, worker));
  ticker = setInterval(() => { sender.emit("fanout", config.room, sent, {}); sent += 1; }, config.every_ms);
  say({ step: "ready" });
  setTimeout(() => { if (!reported) { reported = true; report(); } }, config.limit_ms);
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ step: "error", error: String(error && error.stack || error) }) + "\n",
                       () => process.exit(1));
});
"""


def drain_missing() -> str | None:
    """Why the drain part cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed: run `apt-get install -y --no-install-recommends redis-server`"
    if shutil.which("node") is None:
        return "node is not installed"
    if not (TESTS_JS / "node_modules" / "socket.io-client").is_dir():
        return "tests/js/node_modules has no socket.io-client: run `npm ci --prefix tests/js`"
    return None


class Lines:
    """A child's standard output, line by line, read by a thread so that waits can have a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_json(self, limit: float) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"nothing from the clients within {limit:g} s") from None
            if line is None:
                raise EOFError("the clients exited")
            if line.strip().startswith("{"):
                return json.loads(line)


def drain_case(
    key: str, redis: run.Running, sizes: Sizes, loadgen_prefix: list[str], server_prefix: list[str]
) -> dict[str, Any]:
    """One case: N clients on the first process, which is drained or stopped; they come back on the second."""
    label, how, window = CASES[key]
    environment = {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "BENCH_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "BENCH_RECOVERY_WINDOW": str(window),
        "BENCH_LOG_RECOVERY": "1",
    }
    if sizes.drain_batch is not None:
        environment["BENCH_DRAIN_BATCH"] = str(sizes.drain_batch)
    if sizes.drain_interval is not None:
        environment["BENCH_DRAIN_INTERVAL"] = str(sizes.drain_interval)
    limit = 90.0
    config = {
        "first": "",
        "second": "",
        "count": sizes.clients,
        "room": f"case-{key}",
        "concurrency": 50,
        "every_ms": 100,
        "tail_ms": 500,
        "settle_ms": 10_000,
        "limit_ms": limit * 1000,
    }
    result: dict[str, Any] = {"key": key, "label": label, "how": how, "window": window, "errors": []}
    with run.start_together([(SPEC, environment), (SPEC, environment)], server_prefix) as (first, second):
        config["first"] = f"http://127.0.0.1:{first.port}"
        config["second"] = f"http://127.0.0.1:{second.port}"
        env = {**os.environ, "BENCH_RECOVERY_CLIENTS": json.dumps(config)}
        clients = subprocess.Popen(
            [*loadgen_prefix, "node", "-e", CLIENTS_JS],
            cwd=TESTS_JS, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        lines = Lines(clients)
        try:
            ready = lines.next_json(60)
            if ready.get("step") != "ready":
                raise RuntimeError(f"the clients did not start: {ready}")
            # Every member has had events (an offset) before its process goes.
            time.sleep(0.5)
            result["load"] = os.getloadavg()[0]
            pids = {"first": first.process.pid, "second": second.process.pid, "redis": redis.process.pid}
            cpu_before = {name: loadgen.process_cpu_seconds(pid) for name, pid in pids.items()}
            result["triggered"] = time.time()
            if how == "drain":
                command = [
                    *loadgen_prefix, sys.executable, "-m", "django", "rain_ws_drain", "--pid", str(first.process.pid),
                ]  # fmt: skip
                drain_env = {**os.environ, "PYTHONPATH": str(ROOT), **environment}
                done = subprocess.run(command, cwd=ROOT, env=drain_env, capture_output=True, text=True, timeout=60)
                if done.returncode != 0:
                    raise RuntimeError(f"rain_ws_drain failed: {done.stdout}{done.stderr}")
                result["command_s"] = time.time() - result["triggered"]
            else:
                first.process.terminate()
            report = lines.next_json(limit + 10)
            if report.get("step") != "done":
                raise RuntimeError(f"the clients failed: {report}")
            # CPU seconds from the trigger to the end (the stopped process: until it exited).
            result["cpu_s"] = {
                name: loadgen.process_cpu_seconds(pid) - cpu_before[name]
                for name, pid in pids.items()
                if not (name == "first" and how == "stop")
            }
            result["cpu_wall_s"] = time.time() - result["triggered"]
        except (TimeoutError, EOFError, RuntimeError, json.JSONDecodeError, subprocess.TimeoutExpired) as error:
            result["errors"].append(f"{type(error).__name__}: {error}")
            report = None
        finally:
            if clients.poll() is None:
                try:
                    clients.wait(5)
                except subprocess.TimeoutExpired:
                    clients.kill()
                    clients.wait()
            stderr = clients.stderr.read() if clients.stderr is not None else ""
            if clients.returncode not in (0, None) and stderr.strip():
                result["errors"].append(f"node: {stderr.strip()[-800:]}")
        result["fresh_reasons"] = fresh_reasons(second.log_path)
        if second.process.poll() is not None:
            result["errors"].append(f"the second process exited:\n{second.log_tail()}")
        if how == "drain" and first.process.poll() is not None:
            result["errors"].append(f"the drained process exited:\n{first.log_tail()}")
    if report is not None:
        result.update(summarize(report, result["triggered"], sizes.clients))
        if not report.get("complete"):
            result["errors"].append(f"not every client came back within {limit:g} s")
    return result


def fresh_reasons(log: Path) -> dict[str, int]:
    """Why reconnecting clients got a fresh socket instead of theirs, from a server's log: reason -> count."""
    found: dict[str, int] = {}
    for reason in re.findall(r"not recovered, a fresh socket instead: (.*)", log.read_text(errors="replace")):
        reason = re.sub(r"'[^']*'", "'…'", reason.strip())
        found[reason] = found.get(reason, 0) + 1
    return found


def summarize(report: dict[str, Any], triggered: float, count: int) -> dict[str, Any]:
    """The curve and the figures of one case, from what the clients saw (times in epoch milliseconds)."""
    members = report["members"]
    lost = sorted(member["lost"] / 1000 for member in members if member["lost"] is not None)
    back = sorted(member["back"] / 1000 for member in members if member["back"] is not None)
    settled = sorted(
        (member["back"] if member["recovered"] else member["rejoined"]) / 1000
        for member in members
        if member["back"] is not None and (member["recovered"] or member["rejoined"] is not None)
    )
    downtime = sorted(
        (member["back"] - member["lost"]) / 1000
        for member in members
        if member["back"] is not None and member["lost"] is not None
    )
    start = lost[0] if lost else triggered
    buckets = int(((back[-1] if back else start) - start) / BUCKET) + 1
    reconnects = [0] * buckets
    for moment in back:
        reconnects[min(buckets - 1, int((moment - start) / BUCKET))] += 1
    disconnects = [0] * buckets
    for moment in lost:
        index = int((moment - start) / BUCKET)
        if index < buckets:
            disconnects[index] += 1
    missed = [member["missed"] for member in members]
    reasons = sorted({member["reason"] for member in members if member["reason"]})
    errors = sorted({error for member in members for error in member["errors"]})
    return {
        "clients": count,
        "lost": len(lost),
        "reasons": reasons,
        "client_errors": errors,
        "first_close_s": start - triggered,
        "closing_s": lost[-1] - lost[0] if lost else float("nan"),
        "reconnects": reconnects,
        "disconnects": disconnects,
        "peak": max(reconnects) if back else 0,
        "all_back_s": back[-1] - start if len(back) == count else float("nan"),
        "all_settled_s": settled[-1] - start if len(settled) == count else float("nan"),
        "downtime_p50_s": loadgen.percentile(downtime, 0.5),
        "downtime_max_s": downtime[-1] if downtime else float("nan"),
        "back": len(back),
        "recovered": sum(1 for member in members if member["recovered"]),
        "sent": report["sent"],
        "caught_up": report["caught_up"],
        "late_s": report["late"] / 1000,
        "missed": sum(missed),
        "missing_clients": sum(1 for value in missed if value),
        "missed_by_recovered": sum(member["missed"] for member in members if member["recovered"]),
        "duplicates": sum(member["duplicates"] for member in members),
        "disorder": sum(member["disorder"] for member in members),
    }


# -- tables ---------------------------------------------------------------------------


def fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or value != value else format(value, spec)


def cpu_table(results: dict[str, list[dict[str, Any]]], variants: list[Variant], room: int) -> str:
    def median(key: str, name: str) -> float | None:
        values = [row[name] for row in results.get(key, []) if not row.get("errors")]
        return statistics.median(values) if values else None

    def paired(key: str, name: str, ratio: bool) -> float | None:
        """The median, over the runs, of ``key``'s figure against recovery off's in the same run."""
        pairs = [
            (row[name], base[name])
            for row, base in zip(results.get(key, []), results.get("off", []))
            if not row.get("errors") and not base.get("errors")
        ]
        values = [value / reference if ratio else value - reference for value, reference in pairs if reference]
        return statistics.median(values) if values else None

    rows = []
    for variant in variants:
        runs = results.get(variant.key, [])
        if not runs or any(row.get("errors") for row in runs):
            errors = "; ".join(error for row in runs for error in row.get("errors", []))
            rows.append([variant.label, "failed: " + errors.replace("\n", " ").replace("|", "/")[:300]])
            continue
        reflect, fan = median(variant.key, "reflect_server_cpu_us_per_event"), median(
            variant.key, "fanout_server_cpu_us_per_delivery"
        )
        offsets = sum(row["reflect_with_offset"] for row in runs)
        reflect_name, fan_name = "reflect_server_cpu_us_per_event", "fanout_server_cpu_us_per_delivery"
        rows.append([
            variant.label, fmt(reflect, ".1f"), fmt(paired(variant.key, reflect_name, True), ".2f"),
            fmt(paired(variant.key, reflect_name, False), "+.1f"),
            fmt(median(variant.key, "reflect_events_per_s"), ",.0f"), fmt(median(variant.key, "reflect_p50_ms"), ".2f"),
            "yes" if offsets else "no",
            f"{fmt(median(variant.key, 'reflect_events_per_socket_at_start'), ',.0f')} / "
            f"{fmt(median(variant.key, 'reflect_events_per_socket_at_end'), ',.0f')}",
            fmt(fan, ".2f"), fmt(paired(variant.key, fan_name, True), ".2f"),
            fmt(paired(variant.key, fan_name, False), "+.2f"),
        ])  # fmt: skip
    header = [
        "server", "reflect: CPU µs/event", "× off", "µs/event − off", "events/s", "p50 ms", "offsets",
        "events per socket at the window's start / end", f"fan-out to {room:,}: CPU µs/delivery", "× off",
        "µs/delivery − off",
    ]  # fmt: skip
    return run.markdown(header, rows)


def cpu_runs_table(results: dict[str, list[dict[str, Any]]], variants: list[Variant]) -> str:
    count = max((len(runs) for runs in results.values()), default=0)
    rows = []
    for variant in variants:
        cells = []
        for row in results.get(variant.key, []):
            if row.get("errors"):
                cells.append("error")
            else:
                cells.append(
                    f"{row['reflect_server_cpu_us_per_event']:.1f} / {row['fanout_server_cpu_us_per_delivery']:.2f} "
                    f"(load {row['load']:.2f})"
                )
        rows.append([variant.label, *cells])
    return run.markdown(["server", *(f"run {number + 1}: reflect µs / fan-out µs" for number in range(count))], rows)


def cpu_summary(results: dict[str, list[dict[str, Any]]], variants: list[Variant]) -> str:
    """Each variant's difference from recovery off, run by run: its median and its range."""
    figures = (
        ("reflect_server_cpu_us_per_event", "µs per `reflected`"),
        ("fanout_server_cpu_us_per_delivery", "µs per fan-out delivery"),
    )
    lines = []
    for variant in variants:
        if variant.key == "off":
            continue
        parts = []
        for name, unit in figures:
            differences = sorted(
                row[name] - base[name]
                for row, base in zip(results.get(variant.key, []), results.get("off", []))
                if not row.get("errors") and not base.get("errors")
            )
            if differences:
                parts.append(
                    f"{statistics.median(differences):+.2f} {unit} "
                    f"(runs: {differences[0]:+.2f} to {differences[-1]:+.2f})"
                )
        if parts:
            lines.append(f"- {variant.label} against recovery off, same runs: " + "; ".join(parts) + ".")
    loads = [row["load"] for runs in results.values() for row in runs if "load" in row]
    if "before" in results and loads:
        lines.append(
            "- Recovery off and the revision before recovery run nearly the same code on these paths (recovery "
            "off adds a check that a socket has no log): the spread of their difference, run to run, is this "
            f"machine's noise (1-minute load average {min(loads):.2f}–{max(loads):.2f} at the runs' starts)."
        )
    return "\n".join(lines)


def drain_summary(cases: list[dict[str, Any]]) -> str:
    """What the drain part shows, in figures: the spread of the reconnects, and what recovery did."""
    by_key = {case["key"]: case for case in cases if "reconnects" in case}
    lines = []
    for how, label in (("drain", "A drain"), ("stop", "A stop")):
        for window in ("off", "on"):
            case = by_key.get(f"{how}-{window}")
            if case is None:
                continue
            lines.append(
                f"- {label}, recovery {window}: the {case['clients']:,} closes within "
                f"{fmt(case['closing_s'], '.2f')} s, "
                f"the reconnects at most {case['peak']} per 100 ms, all back {fmt(case['all_back_s'], '.2f')} s after "
                f"the first close; {case['recovered']:,} recovered, {case['missed_by_recovered']:,} events missed "
                f"by them, {case['missed']:,} by all."
            )
    return "\n".join(lines)


def memory_table(result: dict[str, Any]) -> str:
    if result.get("errors"):
        return "failed: " + "; ".join(result["errors"])[:500]
    header = [
        "stand-ins", "events to their room", "log entries", "RSS before MiB", "RSS after MiB", "bytes/entry",
        "server CPU µs per event logged", "recovered / sampled", "events replayed to each",
    ]  # fmt: skip
    replayed = sorted(set(result["replayed"]))
    row = [
        f"{result['stand_ins']:,}", f"{result['events']:,}", f"{result['entries']:,}",
        f"{result['rss_before_kib'] / 1024:.1f}", f"{result['rss_after_kib'] / 1024:.1f}",
        f"{result['bytes_per_entry']:.1f}", f"{result['server_cpu_us_per_logged']:.2f}",
        f"{result['recovered']} / {result['samples']}", ", ".join(f"{value:,}" for value in replayed),
    ]  # fmt: skip
    return run.markdown(header, [row])


def drain_table(cases: list[dict[str, Any]]) -> str:
    header = [
        "case", "clients", "first close after the trigger s", "closes spread over s", "peak reconnects / 100 ms",
        "all reconnected s", "all back in the room s", "downtime p50 / max s", "recovered", "events sent",
        "events missed (clients)", "missed by recovered", "duplicates", "out of order",
        "CPU s from the trigger: first / second / redis-server",
    ]  # fmt: skip
    rows = []
    for case in cases:
        if case.get("errors") and "members" not in case and "reconnects" not in case:
            errors = "; ".join(case["errors"]).replace("\n", " ").replace("|", "/")
            rows.append([case["label"], "failed: " + errors[:300]])
            continue
        rows.append([
            case["label"] + (" (errors)" if case.get("errors") else ""), f"{case['clients']:,}",
            fmt(case["first_close_s"], ".2f"), fmt(case["closing_s"], ".2f"), f"{case['peak']}",
            fmt(case["all_back_s"], ".2f"), fmt(case["all_settled_s"], ".2f"),
            f"{fmt(case['downtime_p50_s'], '.2f')} / {fmt(case['downtime_max_s'], '.2f')}",
            f"{case['recovered']:,}", f"{case['sent']:,}", f"{case['missed']:,} ({case['missing_clients']:,})",
            f"{case['missed_by_recovered']:,}", f"{case['duplicates']:,}", f"{case['disorder']:,}",
            " / ".join(fmt(case.get("cpu_s", {}).get(name), ".2f") for name in ("first", "second", "redis"))
            + f" in {fmt(case.get('cpu_wall_s'), '.1f')} s",
        ])  # fmt: skip
    return run.markdown(header, rows)


def drain_notes(cases: list[dict[str, Any]]) -> str:
    """Why clients got fresh sockets (from the second process's log), and events still late at the end."""
    notes = []
    for case in cases:
        for reason, count in case.get("fresh_reasons", {}).items():
            notes.append(f"- {case['label']}: {count:,} client(s) got a fresh socket: {reason}")
        if "caught_up" in case and not case["caught_up"]:
            notes.append(f"- {case['label']}: some events had not arrived 10 s after the sender stopped")
    return "\n".join(notes)


def curve_table(cases: list[dict[str, Any]]) -> str:
    """Reconnects per 100 ms bucket, from the first close, one column per case."""
    measured = [case for case in cases if "reconnects" in case]
    length = max((len(case["reconnects"]) for case in measured), default=0)
    rows = []
    for index in range(length):
        cells = [f"{index * BUCKET:.1f}"]
        for case in measured:
            counts = case["reconnects"]
            cells.append(str(counts[index]) if index < len(counts) else "")
        rows.append(cells)
    return run.markdown(["s after the first close", *(case["label"] for case in measured)], rows)


# -- the plot --------------------------------------------------------------------------


def svg(cases: list[dict[str, Any]], title: str) -> str:
    """
    One panel per case, on the same scales: reconnects per 100 ms (a step
    line) over the closes per 100 ms (grey bars), against the time since
    the first close.
    """
    measured = [case for case in cases if "reconnects" in case]
    width, left, right, top, panel_h, gap, bottom = 860, 64, 24, 44, 110, 34, 44
    height = top + len(measured) * (panel_h + gap) + bottom
    plot_w = width - left - right
    span = max((len(case["reconnects"]) * BUCKET for case in measured), default=1.0)
    # The scale of the reconnects: a stop's closes, all in a bucket or two, are cut at the top.
    peak = max((case["peak"] for case in measured), default=1) or 1
    x_step, y_step = nice_step(span, 10), nice_step(peak, 2)
    x_max = x_step * -(-span // x_step)
    y_max = y_step * -(-peak // y_step)

    def x(seconds: float) -> float:
        return left + seconds / x_max * plot_w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    for number, case in enumerate(measured):
        colour = COLOURS[number % len(COLOURS)]
        top_y = top + number * (panel_h + gap) + 16

        def y(count: float, top_y: float = top_y) -> float:
            return top_y + panel_h - count / y_max * panel_h

        summary = (
            f"{case['label']}: peak {case['peak']} reconnects / 100 ms, all back at "
            f"{fmt(case['all_back_s'], '.1f')} s, {case['recovered']:,} of {case['clients']:,} recovered"
        )
        parts.append(f'<text x="{left}" y="{top_y - 5}" fill="{colour}">{escape(summary)}</text>')
        tick = 0.0
        while tick <= y_max + 1e-9:
            parts.append(
                f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + plot_w}" y2="{y(tick):.1f}" stroke="#e4e4e4"/>'
                f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>'
            )
            tick += y_step
        for index, count in enumerate(case["disconnects"]):
            if count:
                shown = min(count, y_max)
                parts.append(
                    f'<rect x="{x(index * BUCKET):.1f}" y="{y(shown):.1f}" width="{x(BUCKET) - x(0):.1f}" '
                    f'height="{y(0) - y(shown):.1f}" fill="#c8c8c8"/>'
                )
                if count > y_max:
                    parts.append(
                        f'<text x="{x((index + 1) * BUCKET) + 3:.1f}" y="{y(y_max) + 12:.1f}" fill="#777">'
                        f"{count:,} closed</text>"
                    )
        points = [f"{x(0):.1f},{y(0):.1f}"]
        for index, count in enumerate(case["reconnects"]):
            points += [f"{x(index * BUCKET):.1f},{y(count):.1f}", f"{x((index + 1) * BUCKET):.1f},{y(count):.1f}"]
        points.append(f"{x(len(case['reconnects']) * BUCKET):.1f},{y(0):.1f}")
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(points)}"/>')
        parts.append(f'<rect x="{left}" y="{top_y}" width="{plot_w}" height="{panel_h}" fill="none" stroke="#333"/>')
        tick = 0.0
        while tick <= x_max + 1e-9:
            parts.append(f'<text x="{x(tick):.1f}" y="{y(0) + 14:.1f}" text-anchor="middle">{tick:g}</text>')
            tick += x_step
    bottom_y = top + len(measured) * (panel_h + gap) + 10
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{bottom_y}" text-anchor="middle">seconds since the first client lost '
        f"its connection; line: reconnects per {BUCKET * 1000:.0f} ms; grey bars: connections closed per "
        f"{BUCKET * 1000:.0f} ms</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# -- the section -------------------------------------------------------------------------


def section(
    cpu: str, cpu_runs: str, cpu_notes: str, costs: str, memory: dict[str, Any] | None,
    drain: list[dict[str, Any]], facts: dict[str, str], sizes: Sizes, drain_note: str | None,
) -> str:  # fmt: skip
    details = "\n".join(f"- {name}: {value}" for name, value in facts.items())
    memory_text = "not run"
    if memory is not None:
        memory_text = memory_table(memory)
        if not memory.get("errors"):
            per_slot = memory["bytes_per_entry"]
            memory_text += (
                f"\n\nEach entry is one pointer in the socket's log list (8 bytes, plus the list's growth "
                f"margin): {per_slot:.1f} bytes per entry here. The entry itself, a tuple of the sequence "
                f"number, the offset and the encoded frame ({memory['shared_entry_bytes']} bytes for this "
                f"`news`, by `sys.getsizeof`), is made once per emit and shared by every log that holds it: "
                f"{memory['events']:,} of them here, {memory['shared_entry_bytes'] * memory['events'] / 1024:.0f} "
                f"KiB, within the figure above. An event sent to one socket (`socket.emit`) is an entry of its "
                f"own, so it costs the whole entry. A log is bounded by `RECOVERY_MAX_EVENTS` (1,000) and "
                f"`RECOVERY_MAX_BYTES` (1 MiB): {per_slot * 1000 / 1024:.1f} KiB of pointers at most per socket, "
                "gone or live (a live socket's log holds what it was sent since its last pong)."
            )
    notes = "\n".join(part for part in (drain_summary(drain), drain_notes(drain)) if part)
    drain_text = drain_note or f"{drain_table(drain)}\n\n" + (f"{notes}\n\n" if notes else "") + (
        f"![reconnects per 100 ms]({SVG.name})\n\n"
    ) + (
        "<details><summary>Reconnects per 100 ms, every bucket</summary>\n\n" + curve_table(drain) + "\n\n</details>"
    )
    return f"""{SECTION_TITLE}

From one run of `bench/recovery.py` (see README.md, and the command below): rain_ws
on uvicorn, one process on the in-memory layer for CPU and memory, two on
Redis for the drain; `RECOVERY_WINDOW` 0 (off) or {WINDOW:g} s (on).

**CPU per event.** The servers start together, each pinned to the same core,
and each run gives every server in turn a fresh load of *reflect*, then a
batch of fan-outs (the order rotated from run to run). *reflect*:
{sizes.connections} clients emit `reflect` and wait for `reflected`, which
the listener sends back with `socket.emit`; server CPU over a
{sizes.window:g} s window (after {sizes.warmup:g} s) divided by the events.
The clients then leave with a namespace DISCONNECT, so that none leaves a
stand-in behind for the next runs (a bare close would, with recovery on).
With recovery on, every `reflected` carries an offset and goes into the
socket's replay log (*offsets*: whether the clients saw them); acks carry
none, so the echo scenario's emit-with-ack is not this path. Each event is
one entry of its socket's log, which holds at most `RECOVERY_MAX_EVENTS`
(1,000) between two pongs (the ping interval is 25 s): past 1,000 events
per socket, each entry added drops the oldest. *fan-out*: one room of
{sizes.room:,} sockets held on each server for the whole part,
{sizes.rounds} rounds per run (after 3), `socket.to(room).emit`; server CPU
divided by the events delivered (their logs stay below the bound). Figures
are medians of {sizes.runs} runs; *× off* and *− off* are medians of each
run's figure against recovery off's in the same run: the cost of recovery
per event (or the other revision's difference).

{cpu}

Each run, and the machine's 1-minute load average at its start:

{cpu_runs}

{cpu_notes}

{costs}

**Memory per replay-log entry.** A fresh server with recovery on:
{sizes.stand_ins:,} sockets join a room and their connections drop without a
closing handshake, so each leaves a stand-in that logs what its room is
sent; after as many events to a room nobody is in (so that what an emit
allocates once is in the baseline), {sizes.events:,} events are sent to
theirs. RSS (`VmRSS`, settled) before and after, over the entries logged
(stand-ins × events). Then {sizes.samples} of the sockets are reconnected
with their `pid`: each must be recovered and get the {sizes.events:,} events
back. *server CPU µs per event logged* is the server's CPU time over those
emits divided by the entries.

{memory_text}

**Drain against a stop.** Two processes share a redis-server
(`RedisPubSubChannelLayer`); {sizes.clients:,} clients of the official
socket.io-client (one node process, WebSocket only) connect to the first and
join a room, and a client on the second sends `fanout` to that room every
100 ms. Half a second later the first process is either drained
(`manage.py rain_ws_drain --pid`, `DRAIN_BATCH` {sizes.drain_batch or 100}
every `DRAIN_INTERVAL` {sizes.drain_interval or 1.0:g} s, jittered 0.5–1.5×)
or sent SIGTERM (uvicorn then closes every WebSocket with 1012 at once).
Each client, when it loses its connection, points its Manager at the
second process (as a load balancer would) and reconnects with the client's
default back-off (the first attempt 0.5–1.5 s after the close). Times run
from the first close any client saw; *reconnected* is the client's
`connect` event, *back in the room* that too for a recovered socket and the
ack of its new `join` for a fresh one. *downtime* is each client's own
close-to-reconnect time. At the end the sender stops and the clients wait
(10 s at most) for its last event; then *events missed* counts, over every
client, the room's events it never got (and how many clients missed any),
*duplicates* and *out of order* the events received twice or after a later
one. The CPU column is each process's CPU time from the trigger to the end
(the stopped process's is not read). The reasons for fresh sockets are from
the second process's log (the `rain_ws` logger at INFO). Fresh servers and
clients for every case; every server process and redis-server share one
core.

{drain_text}

{details}
"""


# -- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run, unpinned; writes nothing")
    parser.add_argument("--parts", default="cpu,memory,drain", help="comma-separated subset of: cpu, memory, drain")
    parser.add_argument("--compare-to", metavar="REV", help="cpu: also rain_ws at this commit (e.g. 37b0c4b)")
    parser.add_argument("--clients", type=int, help="drain: clients (default 1,000)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    parts = [name.strip() for name in args.parts.split(",") if name.strip()]
    if unknown := [name for name in parts if name not in ("cpu", "memory", "drain")]:
        parser.error(f"unknown part(s): {', '.join(unknown)}")
    sizes = QUICK if args.quick else FULL
    if args.clients:
        sizes = Sizes(**{**sizes.__dict__, "clients": args.clients})
    loadgen_prefix, server_prefix = ([], []) if args.quick else run.pinning()
    cores = len(os.sched_getaffinity(0))
    if loadgen_prefix:
        # This process is the load generator of the cpu and memory parts.
        os.sched_setaffinity(0, {int(loadgen_prefix[-1])})
    open_files = run.raise_open_file_limit()
    started_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_at_start = run.load_average()
    began = time.monotonic()
    failed = False

    variants = [
        Variant("off", "recovery off (RECOVERY_WINDOW 0)", 0.0),
        Variant("on", f"recovery on ({WINDOW:g} s)", WINDOW),
    ]
    cpu_results: dict[str, list[dict[str, Any]]] = {}
    with ExitStack() as stack:
        if "cpu" in parts:
            if args.compare_to:
                rev = subprocess.run(
                    ["git", "rev-parse", "--short", args.compare_to], cwd=ROOT, capture_output=True, text=True,
                    check=True,
                ).stdout.strip()  # fmt: skip
                source = stack.enter_context(revision(rev))
                variants.append(Variant("before", f"rain_ws at {rev} (no recovery code)", None, source))
            servers = stack.enter_context(
                run.start_together([(SPEC, variant.environment()) for variant in variants], server_prefix)
            )
            cpu_results = asyncio.run(asyncio.wait_for(cpu_part(list(zip(variants, servers)), sizes), 600))
            failed |= any(row.get("errors") for runs in cpu_results.values() for row in runs)
    cpu_text, cpu_runs = cpu_table(cpu_results, variants, sizes.room), cpu_runs_table(cpu_results, variants)
    costs_text = ""
    if "cpu" in parts:
        costs_text = replay_costs_text(replay_costs())
        print(f"\nRecovery: CPU per event\n\n{cpu_text}\n\n{cpu_runs}\n\n{cpu_summary(cpu_results, variants)}")
        print(f"\n{costs_text}")

    memory: dict[str, Any] | None = None
    if "memory" in parts:
        environment = Variant("on", "", WINDOW).environment()
        with run.start(SPEC, server_prefix, environment) as server:
            try:
                memory = asyncio.run(asyncio.wait_for(memory_part(server, sizes), 300))
            except (OSError, loadgen.LoadError, TimeoutError) as error:
                memory = {"errors": [f"{type(error).__name__}: {error}"]}
            if server.process.poll() is not None:
                memory.setdefault("errors", []).append(f"server exited:\n{server.log_tail()}")
        failed |= bool(memory.get("errors"))
        print(f"\nRecovery: memory per replay-log entry\n\n{memory_table(memory)}")
        if not memory.get("errors"):
            print(f"\nshared entry: {memory['shared_entry_bytes']} bytes (sys.getsizeof)")

    drain: list[dict[str, Any]] = []
    drain_note = None
    if "drain" in parts:
        drain_note = drain_missing()
        if drain_note is None:
            with run.redis_server(server_prefix) as redis:
                for key in sizes.cases:
                    case = drain_case(key, redis, sizes, loadgen_prefix, server_prefix)
                    drain.append(case)
                    if "reconnects" in case:
                        print(
                            f"drain: {case['label']}: peak {case['peak']} / 100 ms, all reconnected at "
                            f"{fmt(case['all_back_s'], '.2f')} s, {case['recovered']:,} recovered, "
                            f"{case['missed']:,} events missed {case['errors'][:1]}",
                            file=sys.stderr,
                            flush=True,
                        )
                    else:
                        print(f"drain: {case['label']}: {case['errors']}", file=sys.stderr, flush=True)
            failed |= any(case.get("errors") for case in drain)
            print(f"\nRecovery: drain against a stop\n\n{drain_table(drain)}\n\n{drain_summary(drain)}")
            print(drain_notes(drain))
            print(f"\n{curve_table(drain)}")
        else:
            print(f"\nRecovery: drain against a stop: skipped: {drain_note}")
    elapsed = time.monotonic() - began
    print(f"\n{elapsed:.0f} s in all", file=sys.stderr)

    if args.quick or args.no_write:
        return 1 if failed else 0
    if failed or drain_note is not None or set(parts) != {"cpu", "memory", "drain"}:
        print(
            f"{RESULTS.relative_to(ROOT)} not written: it needs every part, all successful", file=sys.stderr
        )
        return 1
    found = run.versions()
    facts = {
        "command": "`" + " ".join([".venv/bin/python bench/recovery.py", *sys.argv[1:]]) + "`",
        "run on": started_at,
        "machine": f"{run.machine()['CPU']}, {cores} cores, "
        f"load average at start {load_at_start}, at the end {run.load_average()}",
        "rain_ws source": found["rain_ws source"],
        "pinning": f"every server process and redis-server `{' '.join(server_prefix)}`; this script (the load of "
        f"the cpu and memory parts), the node clients and `rain_ws_drain` `{' '.join(loadgen_prefix)}`"
        if server_prefix
        else "none",
        "open files (RLIMIT_NOFILE)": f"{open_files:,}",
        "uvicorn": " ".join(run.UVICORN_OPTIONS) + " --no-access-log --log-level warning --lifespan off",
        "ping interval": "25 s (rain_ws's default): no log is trimmed by a pong within a window",
        "software": ", ".join(
            f"{name} {found[name]}" for name in ("Python", "Django", "channels", "channels-redis", "redis", "uvicorn")
        )
        + f", redis-server {run.redis_version()} (no persistence), node {node_version()}, "
        f"socket.io-client {socket_io_client_version()}",
        "duration": f"{elapsed:.0f} s",
    }
    SVG.write_text(svg(drain, f"Reconnects of {sizes.clients:,} clients: drained or stopped process"))
    cpu_notes = cpu_summary(cpu_results, variants)
    run.write_section(SECTION_TITLE, section(cpu_text, cpu_runs, cpu_notes, costs_text, memory, drain, facts, sizes, None))
    print(f"wrote {RESULTS.relative_to(ROOT)} and {SVG.relative_to(ROOT)}", file=sys.stderr)
    return 0


def node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def socket_io_client_version() -> str:
    package = TESTS_JS / "node_modules" / "socket.io-client" / "package.json"
    return json.loads(package.read_text())["version"] if package.exists() else "not installed"


if __name__ == "__main__":
    sys.exit(main())
