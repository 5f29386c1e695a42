"""
Socket workers under an eager task factory on the loop
(``asyncio.eager_task_factory``, Python 3.12 and later), which a project may
set: a worker's first step then runs inside ``receive_event`` (or
``start_socket``), and one that ends there must not stay recorded as the
socket's worker, or the socket's later events would wait for it for good.
Events stay in order whether a worker ends in its first step or waits.
rain_ws itself schedules its workers (eager starts cost more than they
saved: bench/RESULTS.md, "Python 3.12+ and eager tasks").
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from rain_ws import dispatch, protocol
from rain_ws.testing import SocketTestClient
from tests.project.echo.websockets import happened

ECHO = "/echo/2.0/echo"
EAGER = sys.version_info >= (3, 12)
needs_eager = pytest.mark.skipif(not EAGER, reason="eager tasks came with Python 3.12")


@pytest.fixture
def first_steps(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each worker started, whether its first step ran inside receive_event or start_socket."""
    seen: list[bool] = []
    work = dispatch._work
    callers = {dispatch.receive_event.__code__, dispatch.start_socket.__code__}

    async def watched(socket: Any, connecting: bool = False) -> None:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code not in callers:
            frame = frame.f_back
        seen.append(frame is not None)
        await work(socket, connecting)

    monkeypatch.setattr(dispatch, "_work", watched)
    return seen


async def send_calls(client: SocketTestClient, calls: list[tuple[str, Any]]) -> None:
    """Send every call at once, with ack ids from 100 on (the test client's own ``call`` sends one at a time)."""
    for number, (event, argument) in enumerate(calls, 100):
        await client._send(protocol.EVENT, [event, argument], number)


async def acks(client: SocketTestClient, count: int) -> list[tuple[int | None, Any]]:
    found = []
    while len(found) < count:
        packet = await client._next_packet()
        if packet.type == protocol.ACK:
            found.append((packet.id, packet.data))
    return found


async def until_happened() -> None:
    while not happened:
        await asyncio.sleep(0.01)


async def one_at_a_time_then_back_to_back(first_steps: list[bool]) -> None:
    async with SocketTestClient(ECHO) as first, SocketTestClient(ECHO) as second:
        for number in range(30):
            assert await asyncio.wait_for(first.call("echo", number), 5) == [None, [number]]
            assert await asyncio.wait_for(second.call("echo", -number), 5) == [None, [-number]]
        # Listeners that end at once and ones that wait, queued back to back:
        # answered in the order sent.
        calls = [("sleep", 0) if number % 3 == 1 else ("echo", number) for number in range(60)]
        await send_calls(first, calls)
        answered = await asyncio.wait_for(acks(first, len(calls)), 10)
        assert [number for number, _ in answered] == list(range(100, 160))
        expected = [[None, 0] if event == "sleep" else [None, [argument]] for event, argument in calls]
        assert [data for _, data in answered] == expected
        assert await asyncio.wait_for(second.call("echo", "last"), 5) == [None, ["last"]]
    # A worker for each CONNECT, which may take the first event too, then
    # one for each event sent one at a time, and at least one for the rest.
    assert len(first_steps) >= 60, first_steps


async def test_workers_are_scheduled_and_events_answered_in_order(first_steps: list[bool]) -> None:
    await one_at_a_time_then_back_to_back(first_steps)
    assert not any(first_steps), first_steps


@needs_eager
async def test_with_an_eager_task_factory_on_the_loop_events_are_still_answered_in_order(
    first_steps: list[bool],
) -> None:
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
    try:
        await one_at_a_time_then_back_to_back(first_steps)
    finally:
        loop.set_task_factory(None)
    assert sum(first_steps) >= len(first_steps) // 2, first_steps


@needs_eager
async def test_a_listener_that_disconnects_its_socket_in_its_first_step(first_steps: list[bool]) -> None:
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
    try:
        await disconnect_in_first_step()
    finally:
        loop.set_task_factory(None)
    assert any(first_steps[2:]), first_steps


async def disconnect_in_first_step() -> None:
    async with SocketTestClient(ECHO) as client:
        for _ in range(3):
            assert await asyncio.wait_for(client.call("echo", 1), 5) == [None, [1]]
        await client.emit("bye")
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(client.receive("never"), 5)
        # The disconnect listeners run in a task of their own.
        await asyncio.wait_for(until_happened(), 5)
        assert happened == [(client.sid, "disconnect: server namespace disconnect")]
        await client.reconnect()
        assert await asyncio.wait_for(client.call("echo", 2), 5) == [None, [2]]
