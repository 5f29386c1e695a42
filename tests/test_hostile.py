"""
Hostile clients on real servers, daphne and uvicorn.

Each case is a client that does what no Socket.IO library does, to make the
server hold memory or time: it floods one socket with events faster than the
listener handles them, sends pongs it was never asked for while not reading,
hogs the event loop with a burst, leaves attachments of a binary packet
unsent or sends too many of their bytes, sends a huge CONNECT payload, or
leaves its last namespace and stays. The server must close it (or refuse
the CONNECT) with the documented code and a WARNING, keep its own memory
bounded, and keep serving everyone else.

The floods run on servers of their own with the test project's settings
(the default bounds: MAX_QUEUED_EVENTS 1000); the pong, burst and CONNECT
payload cases on the session's ``daphne_server`` and ``uvicorn_server``; the
others on ``settings_hostile``, whose small bounds and one-second pings make
them quick.

Run with ``-s`` to see what each case measured: how much the server's
memory grew, and how long the other client waited during a burst.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.recording import WAIT, until
from tests.support.servers import Server, run_server
from tests.support.stalled import _text_frame as text_frame
from tests.support.wire import ENGINE_IO_QUERY, WireClient, log_line, open_connection, wire_client

ECHO = "/echo/2.0/echo"
#: How much a server process's resident memory may grow under one hostile client.
RSS_GROWTH_BOUND_KIB = 64 * 1024
TOO_BIG = {"daphne": 4009, "uvicorn": 1009}
#: settings_hostile
HOSTILE_PING_INTERVAL = 1.0
HOSTILE_CONNECT_TIMEOUT = 2.0
HOSTILE_MAX_QUEUED_BYTES = 128 * 1024


# -- servers and their memory ---------------------------------------------------------


@pytest.fixture(params=["daphne", "uvicorn"])
def server(request: pytest.FixtureRequest) -> tuple[str, Server]:
    """The test project with its own settings: on daphne, then on uvicorn."""
    return request.param, request.getfixturevalue(f"{request.param}_server")


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def hostile_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Server]]:
    """The test project with ``settings_hostile``: on daphne, then on uvicorn."""
    with run_server(settings="tests.project.settings_hostile", server=request.param) as running:
        yield request.param, running


def serving_pid(server: Server) -> int:
    """
    The process that runs the application: the server's own, unless it
    started a worker (uvicorn does with ``--workers`` or ``--reload``; the
    tests run it with neither, and daphne never does).
    """
    pid = server.process.pid
    # From /proc, not ps: a fresh Debian image may have no procps.
    with open(f"/proc/{pid}/task/{pid}/children") as listed:
        children = listed.read().split()
    assert len(children) <= 1, f"several workers: {children}"
    return int(children[0]) if children else server.process.pid


def rss_kib(pid: int) -> int:
    """The process's resident set size now (``VmRSS``), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


class RssWatch:
    """The growth of a process's resident memory from now on, at its highest, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = self.peak = rss_kib(pid)
        self._task = asyncio.get_running_loop().create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_kib(self.pid))
            await asyncio.sleep(0.01)

    async def stop(self) -> int:
        """Stop sampling; return the highest growth seen, in KiB."""
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, rss_kib(self.pid))
        return self.peak - self.before


# -- clients ------------------------------------------------------------------------


def placeholder(num: int) -> dict[str, Any]:
    return {"_placeholder": True, "num": num}


def compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


@asynccontextmanager
async def echo_client(server: Server) -> AsyncIterator[WireClient]:
    """A connection that answers pings, with ``/echo/2.0/echo`` joined and its ``hello`` read."""
    async with wire_client(server.ws_url, answer_pings=True) as client:
        await client.connect_namespace(ECHO)
        hello = await client.recv()
        assert isinstance(hello, str) and hello.startswith(f'42{ECHO},["hello",'), hello
        yield client


async def assert_echoes(client: WireClient, ack_id: int = 999_999) -> None:
    """The client's ``echo`` is acked with its argument."""
    await client.send(f'42{ECHO},{ack_id}["echo","still serving"]')
    assert await client.recv(timeout=WAIT) == f'43{ECHO},{ack_id}[null,["still serving"]]'


async def closed_within(client: WireClient, timeout: float, what: str) -> int | None:
    """The close code of ``client``, which the server must close within ``timeout`` seconds."""
    try:
        return await client.wait_closed(timeout=timeout)
    except TimeoutError:
        pytest.fail(f"the server did not close the connection within {timeout} s: {what}")


async def assert_logged(
    server: Server, level: str, client_address: str, code: int | None, reason: str, since: int
) -> None:
    """The server logged closing ``client_address`` with ``code`` (any, if None) for ``reason``, at ``level``."""
    closing = f"closing {client_address} (code " + ("" if code is None else f"{code})")
    line = await log_line(server, level, closing, reason, since=since)
    assert line is not None, f"no {level} log line about closing {client_address} with {code}: {reason}\n" + (
        server.log()[since:][-2000:]
    )


def warning(kind: str, hostile: bool) -> str:
    """
    How a WARNING line shows its level: daphne's log shows it, and so does
    every server's on settings_hostile; uvicorn's on the test project's own
    settings shows none.
    """
    return "WARNING" if kind == "daphne" or hostile else ""


# -- an inbound flood -----------------------------------------------------------------


#: Why the floods fail on daphne (see each test).
@dataclass
class Flooded:
    address: str  #: the flooding client's, as the server logs it
    code: int | str | None  #: its close code, "still open" if the server did not close it
    grown_kib: int  #: how much the server's resident memory grew meanwhile, at the highest


async def flood(kind: str, running: Server, frame: str, seconds: float) -> Flooded:
    """
    Send ``frame`` on ``/echo/2.0/echo`` as fast as possible, reading only
    to answer pings, until the server closes the connection or ``seconds``
    pass; then check that the server serves a newcomer.
    """
    pid = serving_pid(running)
    async with echo_client(running) as flooder:
        sent = 0

        async def write() -> None:
            nonlocal sent
            with suppress(ConnectionClosed):
                while True:
                    await flooder.connection.send(frame)
                    sent += 1
                    if sent % 100 == 0:
                        await asyncio.sleep(0)  # let the reader see the close

        watch = RssWatch(pid)
        writer = asyncio.get_running_loop().create_task(write())
        started = time.monotonic()
        code: int | str | None
        try:
            code = await flooder.wait_closed(timeout=seconds)
        except TimeoutError:
            code = "still open"
        finally:
            elapsed = time.monotonic() - started
            grown_kib = await watch.stop()
            writer.cancel()
            with suppress(asyncio.CancelledError):
                await writer
        print(f"\n{kind}: flood of {sent} {frame[:30]!r}..., {code} after {elapsed:.2f} s, RSS grew {grown_kib} KiB")
        flooded = Flooded(flooder.address, code, grown_kib)
    async with echo_client(running) as newcomer:
        await assert_echoes(newcomer)
    return flooded


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_client_flooding_a_slow_listener_is_closed_and_memory_stays_bounded(kind: str) -> None:
    """
    ``sleep`` holds the listener 20 ms per event, so a client that sends as
    fast as it can fills its socket's queue. Daphne reads whatever arrives:
    at MAX_QUEUED_EVENTS (1000) the connection is closed with 4008, long
    before the ping timeout (10 s). Uvicorn stops reading while rain_ws
    does, so the client is held back by TCP instead and stays connected.
    Either way the server's memory stays bounded.

    A server of its own, so that what the flood leaves behind (memory, frames
    still to drain when it fails) stays out of the other tests.
    """
    with run_server(server=kind) as running:
        since = len(running.log())
        flooded = await flood(kind, running, f'42{ECHO},["sleep",0.02]', 5.0)
        if kind == "daphne":
            assert flooded.code == 4008, f"not closed for flooding within 5 s: {flooded.code}"
            reason = "client sending faster than its listeners"
            await assert_logged(running, warning(kind, False), flooded.address, 4008, reason, since)
        else:
            assert flooded.code == "still open", f"a client held back by TCP was closed: {flooded.code}"
        assert flooded.grown_kib < RSS_GROWTH_BOUND_KIB, f"RSS grew by {flooded.grown_kib} KiB"


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_client_flooding_a_quick_listener_does_not_grow_memory(kind: str) -> None:
    """
    1 KB ``echo`` events without acks: the listener keeps up, so the socket's
    queue stays short, and the server may keep the connection open; but
    what it holds for it must stay bounded. Daphne reads whatever arrives,
    faster than any listener: there the queue does fill, and the flood is
    closed. Frames must never pile up in daphne's own queue, out of reach
    of the bounds: the receive loop takes every frame daphne has at once.
    """
    with run_server(server=kind) as running:
        flooded = await flood(kind, running, f'42{ECHO},["echo","{"x" * 1000}"]', 5.0)
        assert flooded.code in ("still open", 4008), flooded.code
        assert flooded.grown_kib < RSS_GROWTH_BOUND_KIB, f"RSS grew by {flooded.grown_kib} KiB"


# -- pongs nobody asked for ------------------------------------------------------------


async def test_pong_without_a_ping_closes_a_client_that_never_reads(server: tuple[str, Server]) -> None:
    """
    A client that never reads, but sends a pong every 20 ms while the server
    acks its 50 KB echoes: before, each pong counted as proof that it read
    what was sent, and the server held everything the client did not read
    (about 90 MiB in 5 s). Now its first pong, which answers no ping, ends
    the connection.
    """
    kind, running = server
    pid = serving_pid(running)
    since = len(running.log())
    payload = "x" * 50_000
    async with open_connection(f"{running.ws_url}/socket.io/?{ENGINE_IO_QUERY}") as connection:
        opening = await asyncio.wait_for(connection.recv(), WAIT)
        assert isinstance(opening, str) and opening.startswith("0{"), opening
        host, port = connection.local_address[:2]
        address = f"{host}:{port}"
        # From here on, nothing is read: websockets stops reading the socket
        # once a few frames wait unread (max_queue).
        await connection.send(f"40{ECHO},")

        ack_ids = 0

        async def hostile() -> None:
            nonlocal ack_ids
            deadline = time.monotonic() + 8
            with suppress(ConnectionClosed):
                while time.monotonic() < deadline:
                    for _ in range(5):
                        ack_ids += 1
                        await connection.send(f'42{ECHO},{ack_ids}["echo","{payload}"]')
                    await connection.send("3")
                    await asyncio.sleep(0.02)

        watch = RssWatch(pid)
        writer = asyncio.get_running_loop().create_task(hostile())
        try:
            closing = f"closing {address} (code "
            line = await log_line(running, warning(kind, False), closing, since=since, timeout=5.0)
            # The client sees the end as its sends failing (it never reads
            # the close frame).
            done, _ = await asyncio.wait([writer], timeout=5.0)
        finally:
            grown_kib = await watch.stop()
            writer.cancel()
            with suppress(asyncio.CancelledError):
                await writer
        print(f"\n{kind}: pongs without pings, {ack_ids} echoes sent, RSS grew {grown_kib} KiB")
        assert line is not None, f"{kind} did not close the connection:\n" + running.log()[since:][-2000:]
        assert "(code 4002): pong without a ping" in line, line
        assert done, "the connection stayed open at the TCP level"
        assert grown_kib < RSS_GROWTH_BOUND_KIB, f"RSS grew by {grown_kib} KiB"

    async with echo_client(running) as newcomer:
        await assert_echoes(newcomer)


# -- one client's burst and everyone else --------------------------------------------


class BurstClient:
    """
    Client A of the fairness test: a blocking TCP socket, run in a thread,
    that does the WebSocket handshake by hand, connects ``/echo/2.0/echo``,
    writes ``count`` echoes with ack ids in one ``sendall`` (so that they
    reach the server as one burst, not as fast as a Python client can frame
    them), then reads until the last ack. The acks are found by scanning
    bytes, so that the time of the last one is when it arrives, not when a
    client library would have parsed the 20,000 before it.
    """

    def __init__(self, server: Server, count: int) -> None:
        self.server = server
        self.count = count
        self.burst_sent_at = math.inf
        self.last_ack_at = math.inf
        self.closed = False  #: whether the server closed the connection before the last ack

    def run(self) -> None:
        sock = socket.create_connection((self.server.host, self.server.port), timeout=WAIT)
        with sock:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                (
                    f"GET /socket.io/?{ENGINE_IO_QUERY} HTTP/1.1\r\n"
                    f"Host: {self.server.host}:{self.server.port}\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            self._read_until(sock, b"0{")  # the Engine.IO OPEN packet
            sock.sendall(text_frame(f"40{ECHO},"))
            self._read_until(sock, f'42{ECHO},["hello"'.encode())
            burst = b"".join(text_frame(f'42{ECHO},{number}["echo",{number}]') for number in range(self.count))
            self.burst_sent_at = time.monotonic()
            try:
                sock.sendall(burst)
                self._read_until(sock, f"43{ECHO},{self.count - 1}[null,[{self.count - 1}]]".encode())
            except ConnectionError:
                self.closed = True
            self.last_ack_at = time.monotonic()

    @staticmethod
    def _read_until(sock: socket.socket, marker: bytes) -> None:
        tail = b""
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError(f"closed before {marker!r}")
            tail += chunk
            if marker in tail:
                return
            tail = tail[-len(marker):]


async def test_burst_from_one_client_does_not_hold_up_another(server: tuple[str, Server]) -> None:
    """
    A sends 20,000 echoes with acks in one burst; B, meanwhile, sends one
    echo at a time and waits for its ack. On uvicorn, which stops reading
    while rain_ws does, A's burst is paced and completes, and B must be
    served during it, not after it: it gets acks before A gets its last one.
    Daphne reads the whole burst at once, faster than the listener: A is
    closed for flooding (4008), and B is served throughout.
    """
    kind, running = server
    a = BurstClient(running, 20_000)
    async with echo_client(running) as b:
        b_acks: list[tuple[float, float]] = []  # (sent at, acked at)
        burst = asyncio.ensure_future(asyncio.to_thread(a.run))

        async def b_echoes() -> None:
            number = 0
            while not burst.done():
                number += 1
                sent_at = time.monotonic()
                await b.send(f'42{ECHO},{number}["echo","b"]')
                assert await b.recv(timeout=WAIT) == f'43{ECHO},{number}[null,["b"]]'
                b_acks.append((sent_at, time.monotonic()))

        await until(lambda: a.burst_sent_at < math.inf or burst.done(), "A's burst")
        prober = asyncio.ensure_future(b_echoes())
        try:
            await asyncio.wait_for(asyncio.gather(burst, prober), 30)
        finally:
            prober.cancel()
        during = [(sent, acked) for sent, acked in b_acks if acked < a.last_ack_at]
        latencies = sorted((acked - sent) * 1000 for sent, acked in during)
        p99 = latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)] if latencies else math.nan
        print(
            f"\n{kind}: A's burst of {a.count} {'closed' if a.closed else 'acked'} in "
            f"{a.last_ack_at - a.burst_sent_at:.2f} s; B got {len(during)} acks meanwhile, p99 {p99:.1f} ms"
        )
        if kind == "daphne":
            assert a.closed, "daphne: a burst of 20,000 unhandled events was not closed for flooding"
            assert await log_line(running, "client sending faster than its listeners") is not None
            await assert_echoes(b)
        else:
            assert not a.closed, "uvicorn: the burst was closed rather than paced"
            assert len(during) >= 20, f"B got {len(during)} acks before A's last"


# -- binary attachments ----------------------------------------------------------------


async def test_binary_attachments_over_max_queued_bytes_close(hostile_server: tuple[str, Server]) -> None:
    """
    Each attachment is under MAX_PAYLOAD (64 KiB), but three of them are over
    MAX_QUEUED_BYTES (128 KiB): the server does not wait to gather them all.
    Two fit, and are echoed.
    """
    kind, running = hostile_server
    since = len(running.log())
    chunk = 60_000
    async with echo_client(running) as healthy, echo_client(running) as client:
        await client.send(f"452-{ECHO},1" + compact(["echo", placeholder(0), placeholder(1)]))
        await client.send(b"\x01" * chunk, b"\x02" * chunk)
        frames = await client.recv_many(3, timeout=WAIT)
        assert frames == [
            f"462-{ECHO},1" + compact([None, [placeholder(0), placeholder(1)]]),
            b"\x01" * chunk,
            b"\x02" * chunk,
        ]

        await client.send(f"453-{ECHO},2" + compact(["echo", placeholder(0), placeholder(1), placeholder(2)]))
        await client.send(b"\x01" * chunk, b"\x02" * chunk, b"\x03" * chunk)
        assert await closed_within(client, 3.0, "attachments over MAX_QUEUED_BYTES") == TOO_BIG[kind]
        # Any code in the log: it names 4009 on uvicorn too, where 1009 is sent.
        reason = f"binary packet over MAX_QUEUED_BYTES ({HOSTILE_MAX_QUEUED_BYTES} bytes)"
        await assert_logged(running, warning(kind, True), client.address, None, reason, since)
        await assert_echoes(healthy)


async def test_binary_attachments_not_completed_in_a_ping_interval_close(hostile_server: tuple[str, Server]) -> None:
    """
    Two attachments announced, one sent, pings answered: the server closes
    the connection at the next-but-one ping (1 to 2 s) instead of holding the
    packet for good.
    """
    kind, running = hostile_server
    since = len(running.log())
    async with echo_client(running) as healthy, echo_client(running) as client:
        await client.send(f"452-{ECHO},1" + compact(["echo", placeholder(0), placeholder(1)]), b"\x01" * 1000)
        started = time.monotonic()
        code = await closed_within(client, 2 * HOSTILE_PING_INTERVAL + 1.5, "attachments stalled")
        elapsed = time.monotonic() - started
        assert code == 4008
        reason = "binary attachments not completed within a ping interval"
        await assert_logged(running, warning(kind, True), client.address, 4008, reason, since)
        assert elapsed > 0.9 * HOSTILE_PING_INTERVAL, f"closed after {elapsed:.2f} s, under a ping interval"
        await assert_echoes(healthy)


# -- CONNECT ------------------------------------------------------------------------------


async def test_connect_payload_over_max_auth_bytes_is_refused(server: tuple[str, Server]) -> None:
    """A CONNECT over MAX_AUTH_BYTES (16 KiB) is refused; the connection stays usable."""
    kind, running = server
    async with wire_client(running.ws_url, answer_pings=True) as client:
        await client.send(f"40{ECHO}," + compact({"token": "t" * 17_000}))
        assert await client.recv(timeout=WAIT) == (
            f'44{ECHO},{{"message":"CONNECT payload over MAX_AUTH_BYTES (16384 bytes)",'
            '"data":{"code":"auth_too_large"}}'
        )
        # The connection stays open, and a CONNECT of a normal size works.
        await client.connect_namespace(ECHO, {"token": "t" * 1000})
        assert (await client.recv()).startswith(f'42{ECHO},["hello",')
        await assert_echoes(client)


async def test_connection_that_left_its_last_namespace_must_connect_again_in_time(
    hostile_server: tuple[str, Server],
) -> None:
    """
    CONNECT_TIMEOUT is 2 s. Both clients wait out the deadline of a new
    connection first, connected, so that only the deadline that leaving
    starts can apply. One leaves and stays away: closed with 4008 about
    CONNECT_TIMEOUT later. The other leaves and comes back within it: served.
    """
    kind, running = hostile_server
    since = len(running.log())
    async with echo_client(running) as leaver, echo_client(running) as returner:
        await asyncio.sleep(HOSTILE_CONNECT_TIMEOUT + 0.5)
        await assert_echoes(leaver, 1)
        await assert_echoes(returner, 1)
        await leaver.send(f"41{ECHO},")
        await returner.send(f"41{ECHO},")
        left = time.monotonic()

        async def come_back() -> None:
            await asyncio.sleep(HOSTILE_CONNECT_TIMEOUT / 2)
            await returner.connect_namespace(ECHO)
            assert (await returner.recv()).startswith(f'42{ECHO},["hello",')

        coming_back = asyncio.get_running_loop().create_task(come_back())
        try:
            code = await closed_within(leaver, HOSTILE_CONNECT_TIMEOUT + 1.5, "no namespace after leaving")
            elapsed = time.monotonic() - left
        finally:
            await coming_back
        assert code == 4008
        reason = "no namespace connected in time"
        await assert_logged(running, warning(kind, True), leaver.address, 4008, reason, since)
        assert elapsed > HOSTILE_CONNECT_TIMEOUT - 0.2, f"closed {elapsed:.2f} s after leaving"

        # Past the deadline that leaving started, the one that came back is served.
        await asyncio.sleep(max(0.0, left + HOSTILE_CONNECT_TIMEOUT + 0.3 - time.monotonic()))
        await assert_echoes(returner, 2)
    assert (
        await log_line(running, f"closing {returner.address}", since=since, timeout=0) is None
    ), "the client that came back in time was closed"
