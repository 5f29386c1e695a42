"""
The connection cap and the slow-client bound on real servers.

``MAX_CONNECTIONS``: a connection past the cap is accepted and closed at once
with "try again later" (4013 on daphne, 1013 on uvicorn); refusals are logged
at most once per ``IDLE_CHECK_INTERVAL``, with their count; a slot freed by a
disconnect is usable at once; with the idle reaper on, idle connections are
reaped to make room first.

``MAX_UNREAD_BYTES``: a client that stops reading is closed with 4008 once
the bytes sent to it and not yet confirmed by a pong pass the bound, so the
server's memory does not grow with what it cannot deliver, and the clients
that do read, alone or in a room with it, are not held up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.recording import WAIT, Active, RecordingClient, until
from tests.support.scrape import scrape, wait_for_connections
from tests.support.servers import Server, run_server
from tests.support.stalled import StalledClient
from tests.support.wire import ENGINE_IO_QUERY, WireClient, log_line, open_connection, wire_client

ECHO = "/echo/2.0/echo"
PUSH = "/pusher/1.0/push"
ROOM = "/rooms/1.0/room"
TRY_AGAIN_LATER = {"daphne": 4013, "uvicorn": 1013}
MiB = 1024 * 1024

#: IDLE_CHECK_INTERVAL of settings_cap: refusals are logged at most once per interval.
REFUSAL_LOG_INTERVAL = 2.0
#: IDLE_TIME of settings_cap_idle, past which a connection with nothing
#: running is idle. The server's idle clock cannot be watched from here.
IDLE_TIME = 0.5
#: A server-side interval measured from this process is over once it has
#: lasted this much longer here: the log line that started it is seen within
#: a poll (20 ms) of being written, and the event loop's timers are late by
#: a few ms at most.
CLOCK_MARGIN = 0.1


async def refused_with(server: Server) -> int | None:
    """Open a connection the server is expected to refuse; return its close code."""
    async with open_connection(f"{server.ws_url}/socket.io/?{ENGINE_IO_QUERY}") as connection:
        # Refused right after the Engine.IO OPEN packet, so that clients see
        # a transport close and retry with their backoff.
        assert (await asyncio.wait_for(connection.recv(), WAIT)).startswith("0{")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(connection.recv(), WAIT)
        return connection.close_code


async def hold(stack: AsyncExitStack, server: Server) -> WireClient:
    """A connection with the echo channel connected, closed when ``stack`` is."""
    client = await stack.enter_async_context(wire_client(server.ws_url))
    await client.connect_namespace(ECHO)
    assert (await client.recv()).startswith(f'42{ECHO},["hello"')
    return client


def refusal_lines(server: Server) -> list[str]:
    return [line for line in server.log().splitlines() if line.startswith("WARNING rain_ws: refused ")]


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def capped_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Server]]:
    """The test project capped at two connections (``settings_cap``): on daphne, then on uvicorn."""
    with run_server(settings="tests.project.settings_cap", server=request.param) as server:
        yield request.param, server


async def test_past_the_cap_connections_are_told_to_try_again_later(capped_server: tuple[str, Server]) -> None:
    kind, server = capped_server
    await wait_for_connections(server, 0)
    refused_before = (await scrape(server)).value("rain_ws_refused_total")
    async with AsyncExitStack() as stack:
        first = await hold(stack, server)
        await hold(stack, server)
        assert await refused_with(server) == TRY_AGAIN_LATER[kind]
        assert (await scrape(server)).value("rain_ws_refused_total") == refused_before + 1

        # A slot freed by a disconnect serves the very next connection.
        await first.aclose()
        await wait_for_connections(server, 1)
        newcomer = await hold(stack, server)
        await newcomer.send(f'42{ECHO},0["echo","in"]')
        assert await newcomer.recv() == f'43{ECHO},0[null,["in"]]'
        assert (await scrape(server)).value("rain_ws_connections") == 2


async def test_refusals_are_logged_once_per_interval_with_their_count() -> None:
    # A server of its own: the log interval starts with the first refusal.
    with run_server(settings="tests.project.settings_cap") as server:
        async with AsyncExitStack() as stack:
            await hold(stack, server)
            await hold(stack, server)
            for _ in range(5):
                assert await refused_with(server) == 4013
            # The first refusal is logged; the next four, within
            # IDLE_CHECK_INTERVAL (2 s) of it, are logged together when that
            # interval ends, even though no refusal follows.
            assert refusal_lines(server) == ["WARNING rain_ws: refused 1 connection(s) at MAX_CONNECTIONS (2)"]
            await until(
                lambda: len(refusal_lines(server)) > 1,
                "the refusals of the interval to be logged at its end",
                timeout=REFUSAL_LOG_INTERVAL + WAIT,
            )
            logged_at = time.monotonic()
            assert refusal_lines(server)[1:] == ["WARNING rain_ws: refused 4 connection(s) at MAX_CONNECTIONS (2)"]

            # Once a whole interval has passed since that line, the next
            # refusal is logged at once: a time to let pass, not a condition.
            await asyncio.sleep(logged_at + REFUSAL_LOG_INTERVAL + CLOCK_MARGIN - time.monotonic())
            assert await refused_with(server) == 4013
            assert refusal_lines(server)[2:] == ["WARNING rain_ws: refused 1 connection(s) at MAX_CONNECTIONS (2)"]
            assert (await scrape(server)).value("rain_ws_refused_total") == 6


async def test_at_the_cap_idle_connections_are_reaped_to_make_room(clients: list[RecordingClient]) -> None:
    # settings_cap_idle: cap and reaper threshold 3, idle after 0.5 s, but
    # checks a minute apart, so only a connection at the cap makes a sweep.
    with run_server(settings="tests.project.settings_cap_idle") as server:
        busy, idle, also_idle = RecordingClient(ECHO), RecordingClient(ECHO), RecordingClient(ECHO)
        clients.extend((busy, idle, also_idle))
        for client in (busy, idle, also_idle):
            await client.connect(server)
        sleeping = [asyncio.ensure_future(busy.call("sleep", 2.0))]
        # Let the two others become idle (the busy one's listener is running
        # by then): a time on the server's idle clock, which no metric shows
        # apart from the busy connection.
        await asyncio.sleep(IDLE_TIME + 3 * CLOCK_MARGIN)

        # The fourth connection is taken in place of the two idle ones; the
        # one whose listener is running stays.
        newcomer = RecordingClient(ECHO)
        clients.append(newcomer)
        await newcomer.connect(server)
        for client in (idle, also_idle):
            await until(lambda client=client: client.disconnects, "the idle client's disconnect")
            assert client.disconnects == ["server disconnect"]
        assert await newcomer.call("echo", "in") == (None, ["in"])

        # With every connection busy, there is nothing to reap: refused.
        third = RecordingClient(ECHO)
        clients.append(third)
        await third.connect(server)
        sleeping += [asyncio.ensure_future(client.call("sleep", 1.0)) for client in (newcomer, third)]
        await until(lambda: all(client.sio.connected for client in (busy, newcomer, third)), "three connections")
        assert await refused_with(server) == 4013

        assert await asyncio.wait_for(asyncio.gather(*sleeping), WAIT) == [(None, 2.0), (None, 1.0), (None, 1.0)]
        assert [client.disconnects for client in (busy, newcomer, third)] == [[], [], []]
        metrics = await scrape(server)
        assert metrics.value("rain_ws_reaped_total") == 2
        assert metrics.value("rain_ws_refused_total") == 1


def peak_memory_kib(pid: int) -> int:
    """The process's peak resident set size so far (``VmHWM``), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


async def test_client_that_stops_reading_is_closed_and_memory_stays_bounded(
    clients: list[RecordingClient],
) -> None:
    # daphne writes whatever it is given to its buffers, never making the
    # application wait: without the bound, it would hold every event of the
    # push below for the stalled client, about 125 MiB.
    with run_server(settings="tests.project.settings_slow") as server:
        normal = RecordingClient(ECHO)
        clients.append(normal)
        await normal.connect(server)
        for number in range(20):
            assert await normal.call("echo", number) == (None, [number])
        peak_before = peak_memory_kib(server.process.pid)

        active = Active(normal)
        stalled = await StalledClient.open(server, PUSH)
        try:
            await stalled.emit(PUSH, "stream", 2000, 64 * 1024, 0)
            line = await log_line(server, f"closing {stalled.address}", "client not reading", timeout=WAIT)
            assert line is not None, server.log()[-2000:]
            assert line.startswith("WARNING rain_ws: ") and "(code 4008)" in line
            await wait_for_connections(server, 1)
        finally:
            stalled.close()
        assert await active.stop() > 0
        assert normal.disconnects == []

        # MAX_UNREAD_BYTES is 1 MiB: the pushed events, their encoded copies
        # and the transport's buffer stay within a few of it.
        grown_kib = peak_memory_kib(server.process.pid) - peak_before
        assert grown_kib < (3 * MiB + 16 * MiB) // 1024, f"peak RSS grew by {grown_kib} KiB"


async def test_client_that_stops_reading_on_uvicorn_is_given_up() -> None:
    # uvicorn, unlike daphne, holds the application's sends while the
    # client's buffers are full. rain_ws queues behind the held send instead
    # of waiting, until the half-second heartbeat or the unread bound ends
    # the connection; the consumer then ends although the server still holds
    # that send, so the connection is not counted any more.
    with run_server(settings="tests.project.settings_stall", server="uvicorn") as server:
        stalled = await StalledClient.open(server, PUSH)
        try:
            await stalled.emit(PUSH, "stream", 2000, 64 * 1024, 0)
            line = await log_line(server, f"closing {stalled.address}", timeout=WAIT)
            assert line is not None, server.log()[-2000:]
            assert "ping timeout" in line or "client not reading" in line, line
            await wait_for_connections(server, 0, timeout=3)
        finally:
            stalled.close()


@pytest.mark.parametrize(
    ("kind", "settings"),
    [
        ("daphne", "tests.project.settings_slow"),
        ("uvicorn", "tests.project.settings_stall"),
    ],
)
async def test_room_member_that_stops_reading_does_not_hold_up_the_room(
    kind: str, settings: str, clients: list[RecordingClient]
) -> None:
    with run_server(settings=settings, server=kind) as server:
        member, sender = RecordingClient(ROOM), RecordingClient(ROOM)
        clients.extend((member, sender))
        await member.connect(server)
        await sender.connect(server)
        assert await member.call("join", "room") == (None, ["room"])
        stalled = await StalledClient.open(server, ROOM)
        try:
            await stalled.emit(ROOM, "join", "room")
            # Its events are handled in order: once this arrives, it is in the room.
            await stalled.emit(ROOM, "say", "room", "joined")
            await until(lambda: member.named("said"), "the stalled client's first message")

            # 100 messages of 64 KiB each to the room: over 6 MiB for every member.
            for number in range(100):
                assert await sender.call("say", "room", f"{number:03}" + "x" * 65536, timeout=3) == (None, True)
            await until(lambda: len(member.named("said")) == 101, "every message at the member that reads")
        finally:
            stalled.close()
        assert [entry[1][:3] for entry in member.named("said")[1:]] == [f"{number:03}" for number in range(100)]
