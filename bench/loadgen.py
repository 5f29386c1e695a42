"""
The benchmark's load generator: Socket.IO clients in four scenarios.

- ``echo``: N connections each emit ``echo`` with an ack id, wait for the ack
  and emit again at once. After a warm-up it measures a window: acks, their
  latencies, and the server's and its own CPU time.
- ``connect``: a fixed number of connections, ``--concurrency`` at a time,
  each opened (WebSocket handshake, Engine.IO OPEN, Socket.IO CONNECT and its
  reply) and closed at once. It measures connects per second and the
  server's CPU time per connect.
- ``hold``: opens N connections, each connected to the main namespace, and
  keeps them idle: the server's RSS (``VmRSS`` of ``/proc/<pid>/status``)
  before and once it has settled gives the memory per connection; with
  ``--ping-wait`` it also holds them one ping interval past the last open and
  counts the connections that were pinged (and answered).
- ``fanout``: N members join a room; one more connection, the sender, emits
  ``fanout`` and the server sends ``news`` to the room. Each round measures
  the time from the sender's emit to the last member's receipt.

It prints the results as one JSON object.

It speaks WebSocket, Engine.IO and Socket.IO itself, on an
:class:`asyncio.Protocol` that answers each frame from ``data_received``: no
task, future or stream per message, so that the generator costs less CPU than
the servers it measures (it reports its own cost to show that). Client frames
are masked with an all-zero key: any key is valid on the wire, the server
unmasks every frame all the same, and the generator saves XOR-ing each
payload in Python.

In ``fanout`` the generator cannot read a thousand sockets as fast as Node
writes them, so it does not time receipt itself: each member's socket has
``SO_TIMESTAMPNS`` on, and the kernel stamps every segment as it reaches the
socket, which on loopback is when the server's ``send`` call delivers it.
The generator reads the members with ``recvmsg`` (outside the event loop,
during a round) and takes the latest stamp; how fast it reads them then
does not matter.

Linux only (``/proc``, ``SO_TIMESTAMPNS``). Usage::

    python bench/loadgen.py --url ws://127.0.0.1:8000/socket.io/ --server-pid PID [--scenario echo]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import resource
import select
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: The arguments every ``echo`` carries and every ack must return.
ECHO_ARGS: list[Any] = ["hello", {"n": 1, "list": [1, 2, 3], "flag": True}]
#: The ack payload as servers that encode JSON compactly spell it.
ECHO_ACK_BODY = json.dumps(ECHO_ARGS, separators=(",", ":"))
_EMIT_TAIL = json.dumps(["echo", *ECHO_ARGS], separators=(",", ":")).encode()
#: What a ``fanout`` carries after the room and the round number.
NEWS_DATA: dict[str, Any] = {"text": "hello", "n": 1}
_NEWS_PREFIX = '42["news",'

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ZERO_MASK = b"\x00\x00\x00\x00"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Linux's SO_TIMESTAMPNS (and SCM_TIMESTAMPNS), which the socket module does not name.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
#: Room for one timestamp in the ancillary data of ``recvmsg``.
STAMP_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
#: Connections being opened at once, when opening many: below every
#: server's listen backlog (Node's is 511), so none is dropped and retried.
OPEN_CONCURRENCY = 100


class LoadError(Exception):
    """The server answered something the generator did not expect."""


@dataclass
class Tally:
    """What all connections share: the counters and the switches."""

    acks: int = 0
    running: bool = True
    recording: bool = False
    lost: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def error(self, reason: str) -> None:
        if len(self.errors) < 10:
            self.errors.append(reason)

    def answered(self, sent_at: float, now: float) -> bool:
        """Count the answer, at ``now``, to an event sent at ``sent_at``; whether to send the next."""
        self.acks += 1
        if self.recording:
            self.latencies.append(now - sent_at)
        return self.running


def _frame(payload: bytes) -> bytes:
    """A masked, final text frame: what a client sends."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, 0x80 | size))
    elif size < 65536:
        header = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + _ZERO_MASK + payload


class Connection(asyncio.Protocol):
    """One client: the WebSocket handshake, then Engine.IO and Socket.IO frames."""

    def __init__(self, tally: Tally, host: str, port: int, path: str) -> None:
        loop = asyncio.get_running_loop()
        self.tally = tally
        self.host = host
        self.port = port
        self.path = path
        self.sock: socket.socket | None = None
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future[None] = loop.create_future()
        self.closed = loop.create_future()
        self.upgraded = False
        self.closing = False
        self.buffer = b""
        self.key = base64.b64encode(os.urandom(16))
        self.next_id = 0
        self.waiting_id: int | None = None
        self.sent_at = 0.0
        #: Answers to ``join`` and other acks awaited one at a time (see call()).
        self.reply: asyncio.Future[str] | None = None
        #: When the Engine.IO OPEN arrived, and the ping interval it announced.
        self.opened_at = 0.0
        self.ping_interval = 0.0
        self.pings = 0
        self.first_ping_at = 0.0
        #: The round number of the last ``news`` received.
        self.news = -1

    # -- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request = (
            f"GET {self.path}?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        try:
            self._received(self.buffer + data if self.buffer else data)
        except Exception as error:  # noqa: BLE001 - reported, then the connection ends
            self._fail(f"{type(error).__name__}: {error}")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(LoadError(f"connection lost during the handshake: {exc}"))
        elif not self.closing:
            self.tally.lost += 1
            self.tally.error(f"connection lost while running: {exc}")
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(LoadError("connection lost while waiting for an ack"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- frames ----------------------------------------------------------

    def _received(self, data: bytes) -> None:
        start = 0
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end == -1:
                self.buffer = data
                return
            self._check_upgrade(data[:end])
            self.upgraded = True
            start = end + 4
        size = len(data)
        while size - start >= 2:
            first, second = data[start], data[start + 1]
            length = second & 0x7F
            head = start + 2
            if length == 126:
                if size - start < 4:
                    break
                length = int.from_bytes(data[head : head + 2], "big")
                head += 2
            elif length == 127:
                if size - start < 10:
                    break
                length = int.from_bytes(data[head : head + 8], "big")
                head += 8
            end = head + length
            if end > size:
                break
            if second & 0x80 or not first & 0x80:
                raise LoadError("masked or fragmented frame from the server")
            opcode = first & 0x0F
            if opcode == 1:
                self._on_text(data[head:end].decode())
            elif opcode == 9:
                self.transport.write(bytes((0x8A, 0x80 | length)) + _ZERO_MASK + data[head:end])
            elif opcode == 8:
                if not self.closing:
                    raise LoadError(f"server closed the WebSocket: {data[head:end]!r}")
                # The server's answer to our close: the closing handshake is done.
                self.transport.close()
                return
            elif opcode != 10:
                raise LoadError(f"unexpected frame opcode {opcode}")
            start = end
        self.buffer = data[start:]

    def _check_upgrade(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"HTTP/1.1 101"):
            raise LoadError(f"handshake refused: {lines[0].decode(errors='replace')}")
        expected = base64.b64encode(hashlib.sha1(self.key + _WS_GUID).digest())
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-accept" and value.strip() == expected:
                return
        raise LoadError("handshake without a valid Sec-WebSocket-Accept")

    def send(self, payload: bytes) -> None:
        """Send one text frame."""
        self.transport.write(_frame(payload))

    # -- Engine.IO and Socket.IO -----------------------------------------

    def _on_text(self, text: str) -> None:
        if text.startswith("43"):
            if self.reply is not None:
                self.reply.set_result(text)
                self.reply = None
            else:
                self._on_ack(text)
        elif text.startswith(_NEWS_PREFIX):
            self.news = int(text[len(_NEWS_PREFIX) : text.index(",", len(_NEWS_PREFIX))])
        elif text == "2":
            if not self.pings:
                self.first_ping_at = time.perf_counter()
            self.pings += 1
            self.send(b"3")
        elif text.startswith("0{"):
            self.opened_at = time.perf_counter()
            self.ping_interval = json.loads(text[1:])["pingInterval"] / 1000
            self.send(b"40")
        elif text.startswith("40{"):
            if not self.connected.done():
                self.connected.set_result(None)
        else:
            raise LoadError(f"unexpected packet {text[:80]!r}")

    def _on_ack(self, text: str) -> None:
        now = time.perf_counter()
        bracket = text.index("[", 2)
        if int(text[2:bracket]) != self.waiting_id:
            raise LoadError(f"ack for an id that was not asked: {text[:80]!r}")
        body = text[bracket:]
        if body != ECHO_ACK_BODY and json.loads(body) != ECHO_ARGS:
            raise LoadError(f"ack does not echo the arguments: {text[:200]!r}")
        self.waiting_id = None
        if self.tally.answered(self.sent_at, now):
            self.emit()

    def emit(self) -> None:
        """Emit the next ``echo``, asking for an ack."""
        ack_id = self.next_id
        self.next_id += 1
        self.waiting_id = ack_id
        self.sent_at = time.perf_counter()
        self.send(b"42" + str(ack_id).encode() + _EMIT_TAIL)

    async def call(self, event: str, *args: Any) -> list[Any]:
        """Emit ``event`` asking for an ack, and return the ack's arguments."""
        ack_id = self.next_id
        self.next_id += 1
        self.reply = asyncio.get_running_loop().create_future()
        self.send(b"42" + str(ack_id).encode() + json.dumps([event, *args]).encode())
        text = await self.reply
        bracket = text.index("[", 2)
        if text[2:bracket] != str(ack_id):
            raise LoadError(f"ack for an id that was not asked: {text[:80]!r}")
        return json.loads(text[bracket:])

    def _fail(self, reason: str) -> None:
        if not self.connected.done():
            self.connected.set_exception(LoadError(reason))
        else:
            self.tally.error(reason)
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """
        Start the closing handshake: send a close frame; the connection ends
        when the server answers with its own (or closes the TCP connection).
        """
        if self.transport is not None and not self.closing and not self.transport.is_closing():
            self.transport.write(bytes((0x88, 0x82)) + _ZERO_MASK + (1000).to_bytes(2, "big"))
        self.closing = True


@dataclass(frozen=True)
class Target:
    """Where the server listens, from ``--url``."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname or not parts.port:
            raise ValueError(f"expected ws://HOST:PORT/PATH, got {url!r}")
        return cls(parts.hostname, parts.port, parts.path or "/")

    def client(self, tally: Tally) -> Connection:
        return Connection(tally, self.host, self.port, self.path)


async def open_connection(target: Target, client: Connection, stamped: bool = False) -> None:
    """
    Connect ``client`` and wait for the server's CONNECT reply on the main
    namespace; ``stamped`` turns on the kernel's receive timestamps.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        # asyncio turns Nagle's algorithm off only on the sockets it makes
        # itself: small frames must leave at once, not wait for an ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if stamped:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        await loop.sock_connect(sock, (target.host, target.port))
        await loop.create_connection(lambda: client, sock=sock)
    except BaseException:
        sock.close()
        raise
    client.sock = sock
    await client.connected


async def open_all(target: Target, clients: list[Connection], stamped: bool = False) -> None:
    """Open every client, :data:`OPEN_CONCURRENCY` at a time."""
    pending = iter(clients)

    async def worker() -> None:
        for client in pending:
            await open_connection(target, client, stamped)

    await asyncio.gather(*(worker() for _ in range(min(OPEN_CONCURRENCY, len(clients)))))


async def close_all(clients: list[Connection], limit: float = 10.0) -> None:
    """Close every client; abort those still open after ``limit`` seconds."""
    for client in clients:
        client.close()
    waiting = [client.closed for client in clients if client.transport is not None]
    if waiting:
        await asyncio.wait(waiting, timeout=limit)
    for client in clients:
        if client.transport is not None and not client.closed.done():
            client.transport.abort()


def process_cpu_seconds(pid: int | None) -> float:
    """User plus system CPU time of a process and all its threads (NaN without a PID)."""
    if pid is None:
        return float("nan")
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    # Fields 14 and 15 of proc(5), counted after the command name.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_kib(pid: int) -> int:
    """Resident memory of a process, in KiB (``VmRSS``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise LoadError(f"no VmRSS for process {pid}")


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class CpuMeter:
    """The server's and this process's CPU time over a stretch of the run."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.server_start = process_cpu_seconds(server_pid)
        self.own_start = time.process_time()
        self.wall_start = time.perf_counter()

    def read(self) -> tuple[float, float, float]:
        """Seconds since the start: wall clock, server CPU, own CPU."""
        return (
            time.perf_counter() - self.wall_start,
            process_cpu_seconds(self.server_pid) - self.server_start,
            time.process_time() - self.own_start,
        )


# -- echo ------------------------------------------------------------------


async def echo(
    target: Target, connections: int, warmup: float, duration: float, server_pid: int | None
) -> dict[str, Any]:
    """Emit-with-ack in a loop on every connection; measure one window."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    clients = [target.client(tally) for _ in range(connections)]
    try:
        await open_all(target, clients)
        for client in clients:
            client.emit()
        await asyncio.sleep(warmup)

        meter = CpuMeter(server_pid)
        acks_before = tally.acks
        tally.recording = True
        await asyncio.sleep(duration)
        tally.recording = False
        window, server_cpu, own_cpu = meter.read()
        acks = tally.acks - acks_before

        # Let the acks still on their way arrive, so that no server logs a
        # connection that went away mid-event.
        tally.running = False
        deadline = loop.time() + 2
        while any(client.waiting_id is not None for client in clients) and loop.time() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await close_all(clients)

    latencies = sorted(tally.latencies)
    per_ack = 1e6 / acks if acks else float("nan")
    return {
        "connections": connections,
        "warmup_s": warmup,
        "window_s": window,
        "acks": acks,
        "acks_per_s": acks / window,
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_ack": server_cpu * per_ack,
        "server_cpu_share": server_cpu / window,
        "loadgen_cpu_s": own_cpu,
        "loadgen_cpu_us_per_ack": own_cpu * per_ack,
        "loadgen_cpu_share": own_cpu / window,
        "errors": tally.errors if acks else [*tally.errors, "no ack in the window"],
    }


# -- connect ---------------------------------------------------------------


async def connect(
    target: Target, count: int, concurrency: int, warmup_count: int, server_pid: int | None
) -> dict[str, Any]:
    """
    Open and close ``count`` connections, ``concurrency`` at a time, after
    ``warmup_count`` unmeasured ones. Each connection is closed (the closing
    handshake done) before its slot opens the next.
    """
    tally = Tally()
    latencies: list[float] = []

    async def cycle(total: int) -> None:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                client = target.client(tally)
                started = time.perf_counter()
                try:
                    await open_connection(target, client)
                    latencies.append(time.perf_counter() - started)
                finally:
                    client.close()
                await client.closed

        await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))

    await cycle(warmup_count)
    latencies.clear()
    meter = CpuMeter(server_pid)
    await cycle(count)
    window, _, own_cpu = meter.read()
    # The server may tidy up after the last connection closed: let it, so
    # that every connect is charged all its work.
    await asyncio.sleep(0.3)
    _, server_cpu, _ = meter.read()

    latencies.sort()
    return {
        "connects": count,
        "concurrency": concurrency,
        "window_s": window,
        "connects_per_s": count / window,
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_connect": server_cpu * 1e6 / count,
        "server_cpu_share": server_cpu / (window + 0.3),
        "loadgen_cpu_us_per_connect": own_cpu * 1e6 / count,
        "loadgen_cpu_share": own_cpu / window,
        "errors": tally.errors,
    }


# -- hold ------------------------------------------------------------------


async def settled_rss(pid: int, limit: float) -> int:
    """
    The process's RSS once it stops moving: sampled every 0.5 s until five
    samples in a row (2 s) are within 64 KiB of each other, or ``limit``
    seconds have passed.
    """
    samples = [rss_kib(pid)]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        samples.append(rss_kib(pid))
        recent = samples[-5:]
        if len(recent) == 5 and max(recent) - min(recent) <= 64:
            break
    return samples[-1]


async def hold(
    target: Target, connections: int, server_pid: int, ping_wait: bool, settle_limit: float
) -> dict[str, Any]:
    """
    Open ``connections`` idle connections and measure the server's RSS per
    connection; with ``ping_wait``, hold them until each has had a ping.
    """
    tally = Tally()
    # A few connections first, so that whatever the server sets up on its
    # first ones (imports, caches, its heartbeat task) is in the baseline.
    warm = [target.client(tally) for _ in range(min(100, connections))]
    await open_all(target, warm)
    await close_all(warm)
    rss_before = await settled_rss(server_pid, settle_limit)

    clients = [target.client(tally) for _ in range(connections)]
    result: dict[str, Any] = {"connections": connections, "rss_before_kib": rss_before}
    try:
        started = time.perf_counter()
        await open_all(target, clients)
        result["open_s"] = time.perf_counter() - started
        rss_after = await settled_rss(server_pid, settle_limit)
        result["settle_s"] = time.perf_counter() - started - result["open_s"]
        if ping_wait:
            interval = max(client.ping_interval for client in clients)
            last_open = max(client.opened_at for client in clients)
            # Every connection is due a ping one interval after its OPEN;
            # a second more lets a loaded server be a little late.
            await asyncio.sleep(max(0.0, last_open + interval + 1.0 - time.perf_counter()))
            # The pongs sent at the last moment reach the server before the
            # final RSS reading.
            await asyncio.sleep(0.2)
            rss_after = rss_kib(server_pid)
            late = sorted(
                client.first_ping_at - client.opened_at - interval for client in clients if client.pings
            )
            result.update(
                ping_interval_s=interval,
                pinged=sum(1 for client in clients if client.pings),
                ping_late_p50_ms=percentile(late, 0.5) * 1e3,
                ping_late_max_ms=late[-1] * 1e3 if late else float("nan"),
            )
        result.update(
            rss_after_kib=rss_after,
            kib_per_connection=(rss_after - rss_before) / connections,
            lost=tally.lost,
        )
    finally:
        await close_all(clients)
    if ping_wait and result.get("pinged", 0) < connections:
        tally.error(f"{connections - result.get('pinged', 0)} connection(s) had no ping")
    result["errors"] = tally.errors
    return result


# -- fanout ----------------------------------------------------------------


def kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's receive time, in ns, from ``recvmsg``'s ancillary data (None without one)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = _TIMESPEC.unpack(data[: _TIMESPEC.size])
            return seconds * 1_000_000_000 + nanoseconds
    return None


class Room:
    """The members of a room, read directly from their sockets during a round."""

    def __init__(self, members: list[Connection], tally: Tally) -> None:
        self.members = members
        self.tally = tally
        self.by_fd = {member.sock.fileno(): member for member in members}
        self.poller = select.epoll()
        self.stamped = True

    def __enter__(self) -> Room:
        # Take the members away from the event loop: between rounds their
        # frames (news, pings) wait in the kernel for the next round to read.
        for member in self.members:
            member.transport.pause_reading()
            self.poller.register(member.sock.fileno(), select.EPOLLIN)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.poller.close()
        for member in self.members:
            if not member.transport.is_closing():
                member.transport.resume_reading()

    def round(self, number: int, send: Callable[[], None], limit: float) -> tuple[float, float]:
        """
        Run ``send`` and read every member until each has had ``news`` for
        round ``number``; return the seconds from just before ``send`` to the
        last member's kernel receive stamp, and to the generator's reading of it.
        """
        waiting = len(self.members)
        last_stamp = 0
        started = time.time_ns()
        send()
        deadline = time.monotonic() + limit
        while waiting:
            for fd, _ in self.poller.poll(0.1):
                member = self.by_fd[fd]
                try:
                    data, ancillary, _, _ = member.sock.recvmsg(65536, STAMP_SPACE)
                except BlockingIOError:
                    continue
                if not data:
                    self.poller.unregister(fd)
                    raise LoadError("a member's connection closed during a round")
                had = member.news
                member.data_received(data)
                if member.news == number and had != number:
                    waiting -= 1
                    stamp = kernel_stamp(ancillary)
                    if stamp is None:
                        self.stamped = False
                        stamp = time.time_ns()
                    last_stamp = max(last_stamp, stamp)
            if self.tally.errors:
                raise LoadError(self.tally.errors[0])
            if waiting and time.monotonic() > deadline:
                raise LoadError(f"round {number}: {waiting} member(s) had no news within {limit} s")
        return (last_stamp - started) / 1e9, (time.time_ns() - started) / 1e9


async def fanout(
    target: Target, room_size: int, rounds: int, warmup_rounds: int, gap: float, server_pid: int | None
) -> dict[str, Any]:
    """``room_size`` members join a room; the sender's ``fanout`` reaches them ``rounds`` times."""
    tally = Tally()
    members = [target.client(tally) for _ in range(room_size)]
    sender = target.client(tally)
    room = f"room-{room_size}-{os.getpid()}"
    latencies: list[float] = []
    read_latencies: list[float] = []
    try:
        await open_all(target, members, stamped=True)
        await open_connection(target, sender)
        pending = iter(members)

        async def join() -> None:
            for member in pending:
                await member.call("join", room)

        await asyncio.gather(*(join() for _ in range(min(OPEN_CONCURRENCY, room_size))))

        with Room(members, tally) as readers:
            meter: CpuMeter | None = None
            for number in range(warmup_rounds + rounds):
                if number == warmup_rounds:
                    meter = CpuMeter(server_pid)
                frame = _frame(b"42" + json.dumps(["fanout", room, number, NEWS_DATA]).encode())
                stamped, read = readers.round(number, lambda: sender.transport.write(frame), limit=30)
                if number >= warmup_rounds:
                    latencies.append(stamped)
                    read_latencies.append(read)
                # Let the server finish the round (and the loop answer the
                # sender's pings) before the next.
                await asyncio.sleep(gap)
            assert meter is not None
            window, server_cpu, own_cpu = meter.read()
            stamped_by_kernel = readers.stamped
    finally:
        await close_all([*members, sender])

    deliveries = rounds * room_size
    latencies.sort()
    read_latencies.sort()
    return {
        "room_size": room_size,
        "rounds": rounds,
        "p50_ms": percentile(latencies, 0.5) * 1e3,
        "p90_ms": percentile(latencies, 0.9) * 1e3,
        "read_p50_ms": percentile(read_latencies, 0.5) * 1e3,
        "kernel_stamps": stamped_by_kernel,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_delivery": server_cpu * 1e6 / deliveries,
        "loadgen_cpu_share": own_cpu / window,
        "errors": tally.errors,
    }


# -- main ------------------------------------------------------------------


def raise_open_file_limit() -> None:
    """Allow as many open files as the hard limit does: thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="ws://HOST:PORT/socket.io/")
    parser.add_argument("--scenario", choices=["echo", "connect", "hold", "fanout"], default="echo")
    parser.add_argument("--server-pid", type=int, help="the server process whose CPU time and memory are measured")
    parser.add_argument("--timeout", type=float, default=30.0, help="hard limit for the whole run, in seconds")
    parser.add_argument("--connections", type=int, default=50, help="echo: connections; hold: connections held")
    parser.add_argument("--warmup", type=float, default=1.0, help="echo: seconds of load before the window")
    parser.add_argument("--duration", type=float, default=5.0, help="echo: seconds measured")
    parser.add_argument("--count", type=int, default=3000, help="connect: connections measured")
    parser.add_argument("--concurrency", type=int, default=50, help="connect: connections opening at once")
    parser.add_argument("--warmup-count", type=int, default=200, help="connect: connections before the measured ones")
    parser.add_argument("--ping-wait", action="store_true", help="hold: wait until every connection had a ping")
    parser.add_argument("--settle-limit", type=float, default=20.0, help="hold: longest wait for RSS to settle, s")
    parser.add_argument("--room-size", type=int, default=100, help="fanout: members of the room")
    parser.add_argument("--rounds", type=int, default=30, help="fanout: rounds measured")
    parser.add_argument("--warmup-rounds", type=int, default=3, help="fanout: rounds before the measured ones")
    parser.add_argument("--gap", type=float, default=0.02, help="fanout: seconds between rounds")
    args = parser.parse_args()
    if args.scenario == "hold" and args.server_pid is None:
        parser.error("hold needs --server-pid: it measures the server's memory")
    raise_open_file_limit()
    target = Target.parse(args.url)
    scenarios: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "echo": lambda: echo(target, args.connections, args.warmup, args.duration, args.server_pid),
        "connect": lambda: connect(target, args.count, args.concurrency, args.warmup_count, args.server_pid),
        "hold": lambda: hold(target, args.connections, args.server_pid, args.ping_wait, args.settle_limit),
        "fanout": lambda: fanout(
            target, args.room_size, args.rounds, args.warmup_rounds, args.gap, args.server_pid
        ),
    }
    try:
        result = asyncio.run(asyncio.wait_for(scenarios[args.scenario](), args.timeout))
    except (OSError, LoadError, TimeoutError) as error:
        print(json.dumps({"errors": [f"{type(error).__name__}: {error}"]}))
        return 1
    print(json.dumps(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
