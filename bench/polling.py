"""
The long-polling load generator: Socket.IO clients on Engine.IO's HTTP
long-polling transport, each emitting ``echo`` with an ack in a loop.

- ``--mode polling``: N clients. Each makes its session with a handshake
  GET to ``--handshake-url`` and sends every later request to ``--url``:
  the same server, or another process of the same deployment, which then
  relays each request to the session's owner. A client holds two keep-alive
  HTTP/1.1 connections: one always has a GET parked (the server answers it
  when it has something to send: the CONNECT reply, the acks), the other
  carries the POSTs (the CONNECT, each emit, the pongs), one at a time,
  packets that wait for it sent together in the next. Each client emits
  ``echo`` with an ack id, waits for the ack (it comes back on the parked
  GET) and emits again at once: one event in flight per client, two HTTP
  requests per event.
- ``--mode upgrade``: N clients make their session and connect the main
  namespace over long-polling on ``--handshake-url``, then upgrade to
  WebSocket on ``--url`` (``2probe``, ``3probe``, ``5``, with a GET parked
  as a browser's client has) and emit over the WebSocket, as ``loadgen.py``'s
  ``echo`` does. With ``--url`` on another process than the handshake, the
  server relays every frame to the session's owner. A server that refuses
  such an upgrade (it closes the WebSocket before answering the probe) gives
  a result with ``not_measured`` and the reason, and no error.

After a warm-up the generator counts the acks over a window; the servers'
CPU time (``--server-pids``, summed) and redis-server's (``--redis-pid``)
over the window give CPU per ack. It prints the results as one JSON object.

The HTTP client is an :class:`asyncio.Protocol` per connection that parses
each response in ``data_received`` and answers it from there (no task,
future or stream per request), with every request's bytes built once per
client, so that the generator costs less CPU than the servers it measures;
it reports its own cost to show that.

Linux only (``/proc``). Usage::

    python bench/polling.py --url http://127.0.0.1:8000/socket.io/ --server-pids PID [--mode polling]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from bench.loadgen import ECHO_ACK_BODY, ECHO_ARGS, LoadError, Tally  # noqa: E402

#: Engine.IO's separator of packets in a long-polling payload.
SEPARATOR = "\x1e"
_EMIT_TAIL = json.dumps(["echo", *ECHO_ARGS], separators=(",", ":"))
#: Clients being opened at once.
OPEN_CONCURRENCY = 50


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens, from an ``http://HOST:PORT/PATH`` URL."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "ws") or not parts.hostname or not parts.port:
            raise ValueError(f"expected http://HOST:PORT/PATH, got {url!r}")
        return cls(parts.hostname, parts.port, parts.path or "/")

    def get(self, query: str) -> bytes:
        return f"GET {self.path}?{query} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()

    def post_head(self, query: str) -> bytes:
        """A POST's request line and headers, up to the Content-Length's value."""
        return (
            f"POST {self.path}?{query} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: "
        ).encode()


# -- HTTP ------------------------------------------------------------------


def _dechunk(data: bytes, start: int) -> tuple[bytes, int] | None:
    """A chunked body from ``start``: the body and where it ends, or None while incomplete."""
    body = []
    position = start
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end == -1:
            return None
        size = int(data[position:line_end].split(b";", 1)[0], 16)
        chunk_start = line_end + 2
        if size == 0:
            end = data.find(b"\r\n\r\n", line_end)  # no trailers are expected: the final CRLF
            return (b"".join(body), end + 4) if end != -1 else None
        if len(data) < chunk_start + size + 2:
            return None
        body.append(data[chunk_start : chunk_start + size])
        position = chunk_start + size + 2


class HttpChannel(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, each response handed to ``on_response``."""

    def __init__(self, on_response: Callable[[int, bytes], None], on_error: Callable[[str], None]) -> None:
        self.on_response = on_response
        self.on_error = on_error
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.busy = False
        self.closing = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def request(self, data: bytes) -> None:
        self.busy = True
        self.transport.write(data)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        try:
            while buffer:
                end = buffer.find(b"\r\n\r\n")
                if end == -1:
                    break
                head = buffer[:end].lower()
                if not head.startswith(b"http/1.1 "):
                    raise LoadError(f"not an HTTP/1.1 response: {buffer[:80]!r}")
                status = int(head[9:12])
                start = end + 4
                length_at = head.find(b"\r\ncontent-length:")
                if length_at != -1:
                    line_end = head.find(b"\r\n", length_at + 2)
                    length = int(head[length_at + 17 : line_end if line_end != -1 else len(head)])
                    if len(buffer) - start < length:
                        break
                    body, buffer = buffer[start : start + length], buffer[start + length :]
                elif b"\r\ntransfer-encoding: chunked" in head:
                    found = _dechunk(buffer, start)
                    if found is None:
                        break
                    body, buffer = found[0], buffer[found[1] :]
                else:
                    raise LoadError(f"response with neither Content-Length nor chunks: {head[:200]!r}")
                self.busy = False
                self.on_response(status, body)
        except Exception as error:  # noqa: BLE001 - reported, then the connection ends
            self.buffer = b""
            self.on_error(f"{type(error).__name__}: {error}")
            return
        self.buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.on_error(f"HTTP connection lost{' during a request' if self.busy else ''}: {exc}")
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def connect(endpoint: Endpoint, channel: asyncio.Protocol) -> socket.socket:
    """Connect ``channel`` to ``endpoint`` with Nagle's algorithm off (small requests leave at once)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(sock, (endpoint.host, endpoint.port))
        await loop.create_connection(lambda: channel, sock=sock)
    except BaseException:
        sock.close()
        raise
    return sock


async def fetch(endpoint: Endpoint, request: bytes) -> tuple[int, bytes]:
    """One request on a connection of its own (the handshake), closed after."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[tuple[int, bytes]] = loop.create_future()

    def fail(reason: str) -> None:
        if not answer.done():
            answer.set_exception(LoadError(reason))

    channel = HttpChannel(lambda status, body: answer.done() or answer.set_result((status, body)), fail)
    await connect(endpoint, channel)
    try:
        channel.request(request)
        return await answer
    finally:
        channel.close()


# -- the client --------------------------------------------------------------


class PollingClient:
    """One Socket.IO client on long-polling: a GET always parked, POSTs one at a time."""

    def __init__(self, tally: Tally, handshake: Endpoint, requests: Endpoint) -> None:
        self.tally = tally
        self.handshake = handshake
        self.requests = requests
        self.sid = ""
        self.get_request = b""
        self.post_head = b""
        self.get_channel: HttpChannel | None = None
        self.post_channel: HttpChannel | None = None
        self.outbox: list[str] = []
        self.posting = False
        #: "open", then "upgrading" (no GET parked again) or "closing".
        self.state = "open"
        self.next_id = 0
        self.waiting_id: int | None = None
        self.sent_at = 0.0
        self.connected: asyncio.Future[None] | None = None
        #: Resolved when the parked GET comes back and no other is parked.
        self.get_done: asyncio.Future[None] | None = None

    async def open(self) -> None:
        """Handshake, then the two connections, then the main namespace's CONNECT and its reply."""
        loop = asyncio.get_running_loop()
        status, body = await fetch(self.handshake, self.handshake.get("EIO=4&transport=polling"))
        text = body.decode()
        if status != 200 or not text.startswith("0{"):
            raise LoadError(f"handshake answered {status}: {text[:200]!r}")
        self.sid = json.loads(text.split(SEPARATOR, 1)[0][1:])["sid"]
        query = f"EIO=4&transport=polling&sid={quote(self.sid, safe='')}"
        self.get_request = self.requests.get(query)
        self.post_head = self.requests.post_head(query)
        self.get_channel = HttpChannel(self._on_get, self._fail)
        self.post_channel = HttpChannel(self._on_post, self._fail)
        await connect(self.requests, self.get_channel)
        await connect(self.requests, self.post_channel)
        self.connected = loop.create_future()
        self.get_channel.request(self.get_request)
        self.post("40")
        await self.connected

    # -- responses ------------------------------------------------------------

    def _on_get(self, status: int, body: bytes) -> None:
        if status != 200:
            if status == 400 and self.state == "upgrading" and self.get_done is not None and not self.get_done.done():
                # The parked GET reached the owner after the probe (which can
                # overtake it when relayed through the layer): the owner holds
                # it until the upgrade, then answers 400. Polling is over all
                # the same, as after the noop.
                self.get_done.set_result(None)
                return
            raise LoadError(f"GET answered {status}: {body[:200]!r}")
        if self.state == "open":
            # Park the next GET at once, before looking at what came.
            self.get_channel.request(self.get_request)  # type: ignore[union-attr]
        elif self.get_done is not None and not self.get_done.done():
            self.get_done.set_result(None)
        text = body.decode()
        for packet in text.split(SEPARATOR) if SEPARATOR in text else (text,):
            if packet.startswith("43"):
                self._on_ack(packet)
            elif packet == "2":
                self.post("3")
            elif packet == "6":
                pass  # noop: the answer to a GET that had nothing, e.g. at the upgrade
            elif packet.startswith("40"):
                if self.connected is not None and not self.connected.done():
                    self.connected.set_result(None)
            elif packet == "1" and self.state != "open":
                pass  # the close we asked for
            else:
                raise LoadError(f"unexpected packet {packet[:80]!r}")

    def _on_post(self, status: int, body: bytes) -> None:
        if status != 200:
            raise LoadError(f"POST answered {status}: {body[:200]!r}")
        self.posting = False
        if self.outbox:
            self._flush()

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

    def _fail(self, reason: str) -> None:
        if self.connected is not None and not self.connected.done():
            self.connected.set_exception(LoadError(reason))
        elif self.state == "open":
            self.tally.error(reason)
        self.abort()

    # -- requests ---------------------------------------------------------------

    def post(self, packet: str) -> None:
        self.outbox.append(packet)
        if not self.posting:
            self._flush()

    def _flush(self) -> None:
        outbox = self.outbox
        body = (SEPARATOR.join(outbox) if len(outbox) > 1 else outbox[0]).encode()
        outbox.clear()
        self.posting = True
        self.post_channel.request(self.post_head + str(len(body)).encode() + b"\r\n\r\n" + body)  # type: ignore[union-attr]

    def emit(self) -> None:
        """Emit the next ``echo``, asking for an ack."""
        ack_id = self.next_id
        self.next_id += 1
        self.waiting_id = ack_id
        self.sent_at = time.perf_counter()
        self.post(f"42{ack_id}{_EMIT_TAIL}")

    def stop_polling(self) -> asyncio.Future[None]:
        """Park no further GET; the future resolves when the parked one comes back."""
        self.state = "upgrading"
        self.get_done = asyncio.get_running_loop().create_future()
        return self.get_done

    async def close(self, limit: float) -> None:
        """Close the session (POST ``1``), wait up to ``limit`` s for the parked GET to return, then hang up."""
        if self.get_channel is not None and self.state != "closing" and not self.get_channel.closing:
            done = self.get_done if self.state == "upgrading" else self.stop_polling()
            assert done is not None
            self.state = "closing"
            self.post("1")
            try:
                await asyncio.wait_for(done, limit)
            except TimeoutError:
                pass
        self.abort()

    def abort(self) -> None:
        if self.state == "open":
            self.state = "closing"
        for channel in (self.get_channel, self.post_channel):
            if channel is not None:
                channel.close()


class UpgradedConnection(loadgen.Connection):
    """``loadgen.py``'s WebSocket client, opened as the upgrade of a long-polling session."""

    def __init__(self, tally: Tally, endpoint: Endpoint, sid: str) -> None:
        super().__init__(tally, endpoint.host, endpoint.port, endpoint.path)
        self.sid = sid
        self.probed = False
        #: Why the server would not take the upgrade, if it would not.
        self.refused: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request = (
            f"GET {self.path}?EIO=4&transport=websocket&sid={quote(self.sid, safe='')} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode())

    def _check_upgrade(self, head: bytes) -> None:
        super()._check_upgrade(head)
        self.send(b"2probe")

    def _received(self, data: bytes) -> None:
        try:
            super()._received(data)
        except LoadError as error:
            if not self.probed and str(error).startswith("server closed the WebSocket"):
                self.refused = str(error)
            raise

    def _on_text(self, text: str) -> None:
        if self.probed:
            super()._on_text(text)
        elif text == "3probe":
            self.probed = True
            self.send(b"5")
            self.connected.set_result(None)
        else:
            raise LoadError(f"expected 3probe, got {text[:80]!r}")


async def open_upgraded(
    tally: Tally, client: PollingClient, endpoint: Endpoint
) -> tuple[UpgradedConnection | None, str | None]:
    """
    Upgrade ``client``'s session to a WebSocket on ``endpoint``: the client
    (with a GET parked) probes, the parked GET returns, the client sends
    ``5``. The connection, or None and why the server refused.
    """
    parked = client.stop_polling()
    upgraded = UpgradedConnection(tally, endpoint, client.sid)
    try:
        await loadgen.open_connection(loadgen.Target(endpoint.host, endpoint.port, endpoint.path), upgraded)
    except LoadError:
        if upgraded.refused is not None:
            return None, upgraded.refused
        raise
    # The server answers the parked GET (a noop) once probed: only then is
    # long-polling paused, as the client sees it.
    await asyncio.wait_for(parked, 10)
    client.abort()
    return upgraded, None


# -- the load ---------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    return sum(loadgen.process_cpu_seconds(pid) for pid in pids)


def load_average() -> float:
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])


async def echo(
    mode: str,
    handshake: Endpoint,
    requests: Endpoint,
    connections: int,
    warmup: float,
    duration: float,
    server_pids: list[int],
    redis_pid: int | None,
) -> dict[str, Any]:
    """Emit-with-ack in a loop on every client, over long-polling or upgraded; measure one window."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    load_at_start = load_average()
    polling = [PollingClient(tally, handshake, requests if mode == "polling" else handshake) for _ in range(connections)]
    upgraded: list[UpgradedConnection] = []
    refused: list[str] = []
    try:
        pending = iter(polling)

        async def opener() -> None:
            for client in pending:
                await client.open()
                if mode == "upgrade" and not refused:
                    connection, reason = await open_upgraded(tally, client, requests)
                    if connection is None:
                        refused.append(reason or "refused")
                    else:
                        upgraded.append(connection)

        await asyncio.gather(*(opener() for _ in range(min(OPEN_CONCURRENCY, connections))))
        if refused:
            return {
                "connections": connections,
                "not_measured": f"the upgrade was refused: {refused[0]}",
                "load_average": load_at_start,
                "errors": tally.errors,
            }
        clients: list[Any] = upgraded if mode == "upgrade" else polling
        for client in clients:
            client.emit()
        await asyncio.sleep(warmup)

        server_start, redis_start = cpu_seconds(server_pids), loadgen.process_cpu_seconds(redis_pid)
        own_start, wall_start = time.process_time(), time.perf_counter()
        acks_before = tally.acks
        tally.recording = True
        await asyncio.sleep(duration)
        tally.recording = False
        window = time.perf_counter() - wall_start
        server_cpu = cpu_seconds(server_pids) - server_start
        redis_cpu = loadgen.process_cpu_seconds(redis_pid) - redis_start
        own_cpu = time.process_time() - own_start
        acks = tally.acks - acks_before

        # Let the acks on their way arrive before the clients close.
        tally.running = False
        deadline = loop.time() + 2
        while any(client.waiting_id is not None for client in clients) and loop.time() < deadline:
            await asyncio.sleep(0.01)
    finally:
        if upgraded:
            await loadgen.close_all(upgraded)
        await asyncio.gather(*(client.close(2.0) for client in polling))

    latencies = sorted(tally.latencies)
    per_ack = 1e6 / acks if acks else float("nan")
    return {
        "connections": connections,
        "warmup_s": warmup,
        "window_s": window,
        "acks": acks,
        "acks_per_s": acks / window,
        "p50_ms": loadgen.percentile(latencies, 0.50) * 1e3,
        "p99_ms": loadgen.percentile(latencies, 0.99) * 1e3,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_ack": server_cpu * per_ack,
        "server_cpu_share": server_cpu / window,
        "redis_cpu_us_per_ack": redis_cpu * per_ack if redis_pid is not None else None,
        "loadgen_cpu_s": own_cpu,
        "loadgen_cpu_us_per_ack": own_cpu * per_ack,
        "loadgen_cpu_share": own_cpu / window,
        "load_average": load_at_start,
        "load_average_end": load_average(),
        "errors": tally.errors if acks else [*tally.errors, "no ack in the window"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="http://HOST:PORT/socket.io/: every request after the handshake")
    parser.add_argument("--handshake-url", help="where the session is made (default: --url)")
    parser.add_argument("--mode", choices=["polling", "upgrade"], default="polling")
    parser.add_argument("--server-pids", default="", help="comma-separated: the processes whose CPU time is measured")
    parser.add_argument("--redis-pid", type=int, help="redis-server, whose CPU time is given apart")
    parser.add_argument("--timeout", type=float, default=30.0, help="hard limit for the whole run, in seconds")
    parser.add_argument("--connections", type=int, default=50, help="clients")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds of load before the window")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    args = parser.parse_args()
    loadgen.raise_open_file_limit()
    requests = Endpoint.parse(args.url)
    handshake = Endpoint.parse(args.handshake_url) if args.handshake_url else requests
    pids = [int(pid) for pid in args.server_pids.split(",") if pid]
    try:
        result = asyncio.run(
            asyncio.wait_for(
                echo(
                    args.mode, handshake, requests, args.connections, args.warmup, args.duration, pids, args.redis_pid
                ),
                args.timeout,
            )
        )
    except (OSError, LoadError, TimeoutError) as error:
        print(json.dumps({"errors": [f"{type(error).__name__}: {error}"]}))
        return 1
    print(json.dumps(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
