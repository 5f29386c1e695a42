"""
The benchmark's load generator: N Socket.IO clients doing emit-with-ack.

Each connection opens a WebSocket to ``/socket.io/?EIO=4&transport=websocket``,
connects the main namespace, then emits ``echo`` with an ack id, waits for the
ack and emits again at once, until told to stop. After a warm-up the generator
measures a window: acks received, their latencies (emit to ack, per
connection), the server process's CPU time (read from ``/proc/<pid>/stat``)
and its own CPU time. It prints the results as one JSON object.

It speaks WebSocket, Engine.IO and Socket.IO itself, on an
:class:`asyncio.Protocol` that answers each ack from ``data_received``: no
task, future or stream per message, so that the generator costs less CPU per
ack than the servers it measures (it reports its own cost to show that).
Client frames are masked with an all-zero key: any key is valid on the wire,
the server unmasks every frame all the same, and the generator saves XOR-ing
each payload in Python.

Linux only (``/proc``). Usage::

    python bench/loadgen.py --url ws://127.0.0.1:8000/socket.io/ --server-pid PID
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: The arguments every ``echo`` carries and every ack must return.
ECHO_ARGS: list[Any] = ["hello", {"n": 1, "list": [1, 2, 3], "flag": True}]
#: The ack payload as servers that encode JSON compactly spell it.
ECHO_ACK_BODY = json.dumps(ECHO_ARGS, separators=(",", ":"))
_EMIT_TAIL = json.dumps(["echo", *ECHO_ARGS], separators=(",", ":")).encode()

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ZERO_MASK = b"\x00\x00\x00\x00"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class LoadError(Exception):
    """The server answered something the generator did not expect."""


@dataclass
class Tally:
    """What all connections share: the counters and the switches."""

    acks: int = 0
    running: bool = True
    recording: bool = False
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


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
        self.tally = tally
        self.host = host
        self.port = port
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.buffer = b""
        self.key = base64.b64encode(os.urandom(16))
        self.next_id = 0
        self.waiting_id: int | None = None
        self.sent_at = 0.0

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
        elif self.tally.running:
            self.tally.errors.append(f"connection lost while running: {exc}")
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
                raise LoadError(f"server closed the WebSocket: {data[head:end]!r}")
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

    def _send(self, payload: bytes) -> None:
        self.transport.write(_frame(payload))

    # -- Engine.IO and Socket.IO -----------------------------------------

    def _on_text(self, text: str) -> None:
        if text.startswith("43"):
            self._on_ack(text)
        elif text == "2":
            self._send(b"3")
        elif text.startswith("0{"):
            self._send(b"40")
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
        tally = self.tally
        tally.acks += 1
        if tally.recording:
            tally.latencies.append(now - self.sent_at)
        if tally.running:
            self.emit()

    def emit(self) -> None:
        """Emit the next ``echo``, asking for an ack."""
        ack_id = self.next_id
        self.next_id += 1
        self.waiting_id = ack_id
        self.sent_at = time.perf_counter()
        self._send(b"42" + str(ack_id).encode() + _EMIT_TAIL)

    def _fail(self, reason: str) -> None:
        if not self.connected.done():
            self.connected.set_exception(LoadError(reason))
        else:
            self.tally.errors.append(reason)
        self.close()

    def close(self) -> None:
        """Send a WebSocket close frame and end the connection."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes((0x88, 0x82)) + _ZERO_MASK + (1000).to_bytes(2, "big"))
            self.transport.close()


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its threads."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    # Fields 14 and 15 of proc(5), counted after the command name.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(
    url: str, connections: int, warmup: float, duration: float, server_pid: int | None
) -> dict[str, Any]:
    """Open the connections, run the load and measure one window."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname or not parts.port:
        raise ValueError(f"expected ws://HOST:PORT/PATH, got {url!r}")
    loop = asyncio.get_running_loop()
    tally = Tally()
    clients = [Connection(tally, parts.hostname, parts.port, parts.path or "/") for _ in range(connections)]
    try:
        await asyncio.gather(
            *(loop.create_connection(lambda client=client: client, parts.hostname, parts.port) for client in clients)
        )
        await asyncio.gather(*(client.connected for client in clients))
        for client in clients:
            client.emit()
        await asyncio.sleep(warmup)

        server_before = process_cpu_seconds(server_pid) if server_pid else 0.0
        own_before = time.process_time()
        acks_before = tally.acks
        started = time.perf_counter()
        tally.recording = True
        await asyncio.sleep(duration)
        tally.recording = False
        window = time.perf_counter() - started
        acks = tally.acks - acks_before
        own_cpu = time.process_time() - own_before
        server_cpu = process_cpu_seconds(server_pid) - server_before if server_pid else float("nan")

        # Let the acks still on their way arrive, so that no server logs a
        # connection that went away mid-event.
        tally.running = False
        deadline = loop.time() + 2
        while any(client.waiting_id is not None for client in clients) and loop.time() < deadline:
            await asyncio.sleep(0.01)
    finally:
        tally.running = False
        for client in clients:
            client.close()
        await asyncio.wait([client.closed for client in clients], timeout=2)

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
        "errors": tally.errors[:10],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="ws://HOST:PORT/socket.io/")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before the window")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    parser.add_argument("--server-pid", type=int, help="the server process whose CPU time is measured")
    parser.add_argument("--timeout", type=float, default=30.0, help="hard limit for the whole run, in seconds")
    args = parser.parse_args()
    try:
        result = asyncio.run(
            asyncio.wait_for(
                measure(args.url, args.connections, args.warmup, args.duration, args.server_pid),
                args.timeout,
            )
        )
    except (OSError, LoadError, TimeoutError) as error:
        print(json.dumps({"errors": [f"{type(error).__name__}: {error}"]}))
        return 1
    print(json.dumps(result))
    return 1 if result["errors"] or not result["acks"] else 0


if __name__ == "__main__":
    sys.exit(main())
