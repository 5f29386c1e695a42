"""
rain.js and connection state recovery, in headless Chromium against a real
daphne: a page's socket that went away (reaped by the idle reaper, or its
WebSocket lost) comes back with its id, its rooms and exactly the events it
missed, once, in order, and without the offsets the server adds to them;
with recovery off, the runtime behaves as it always did.

A second page, with a session of its own, is the other client in the room
(``/rooms/1.0/room``, tests.project.rooms_app). The tests also read the
frames on the wire: the offsets on events, the pid in CONNECT replies, and
what the runtime's CONNECTs carry back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import Tab, open_tab, page_until, requires_browser
from tests.support.servers import Server, run_server

pytestmark = [pytest.mark.browser, requires_browser, pytest.mark.asyncio(loop_scope="module")]

ROOM = "r1"
CONNECT_TO_ROOM = "40/rooms/1.0/room,"
EVENT_OF_ROOM = "42/rooms/1.0/room,"

#: JavaScript that opens the room channel as window.room, records its events
#: (with their arguments as the listeners get them) in window.got and what
#: happens to it in window.seen, joins the room ``join`` names (if any),
#: and resolves to the socket's id and the rooms it is in.
OPEN_ROOM = """async (join) => {
    window.got = [];
    window.seen = {connects: 0, reasons: []};
    const socket = window.room = rain.messaging.getSocket("/rooms/1.0/room");
    socket.on("connect", () => seen.connects++);
    socket.on("disconnect", (reason) => seen.reasons.push(reason));
    for (const event of ["said", "whispered"]) socket.on(event, (...args) => got.push([event, ...args]));
    const rooms = await (join ? socket.emitWithAck("join", join) : socket.emitWithAck("rooms"));
    return [socket.id, rooms];
}"""


@pytest.fixture(scope="module")
def recovering_server() -> Iterator[Server]:
    with run_server(settings="tests.project.browser.settings_recovery_reap") as server:
        yield server


@pytest.fixture(scope="module")
def reaping_server() -> Iterator[Server]:
    """The same project, recovery off."""
    with run_server(
        settings="tests.project.browser.settings_recovery_reap", env={"RAIN_WS_RECOVERY_WINDOW": "0"}
    ) as server:
        yield server


@pytest.fixture(scope="module")
def recovering_server_without_reaper() -> Iterator[Server]:
    with run_server(settings="tests.project.browser.settings_recovery") as server:
        yield server


def record_frames(tab: Tab) -> tuple[list[str], list[str]]:
    """The text frames the page's WebSockets send and receive, from now on."""
    sent: list[str] = []
    received: list[str] = []

    def on_websocket(ws: Any) -> None:
        ws.on("framesent", lambda payload: isinstance(payload, str) and sent.append(payload))
        ws.on("framereceived", lambda payload: isinstance(payload, str) and received.append(payload))

    tab.page.on("websocket", on_websocket)
    return sent, received


async def open_pages(browser: Any, server: Server) -> tuple[Tab, Tab]:
    """
    The receiver and the sender: two pages of the test project, each with
    a session of its own, loaded before either opens the room channel (so
    that the time pages take to load is not idle time of the channel).
    """
    tabs = (await open_tab(browser, server.url), await open_tab(browser, server.url))
    await asyncio.gather(*(tab.page.goto("/browser/page/") for tab in tabs))
    return tabs


async def open_room(tab: Tab, join: str | None = None) -> tuple[str, list[str]]:
    """Open the room channel and join ``join``; the socket's id and its rooms."""
    socket_id, rooms = await tab.page.evaluate(OPEN_ROOM, join)
    return socket_id, rooms


async def say(tab: Tab, *texts: str, to: str | None = None) -> None:
    """Say each text in the room (or whisper it to the socket ``to``), one after the other."""
    await tab.page.evaluate(
        """async ([room, texts, to]) => {
            for (const text of texts) {
                if (to) await window.room.emitWithAck("whisper", to, text);
                else await window.room.emitWithAck("say", room, text);
            }
        }""",
        [ROOM, list(texts), to],
    )


async def got(tab: Tab) -> list[list[Any]]:
    return await tab.page.evaluate("() => got")


async def reaped(tab: Tab) -> None:
    await page_until(tab, "() => seen.reasons.length === 1", "the reaper's disconnect", timeout=10)
    assert await tab.page.evaluate("() => [seen.reasons, room.connected]") == [["io server disconnect"], False]


def connects(frames: list[str]) -> list[str]:
    """The CONNECT packets of the room channel among ``frames``, as sent."""
    return [frame for frame in frames if frame.startswith(CONNECT_TO_ROOM)]


def payloads(frames: list[str], prefix: str) -> list[Any]:
    """The JSON payloads of the frames that start with ``prefix``."""
    return [json.loads(frame[len(prefix) :]) for frame in frames if frame.startswith(prefix) and frame != prefix]


async def reap_and_miss(browser: Any, server: Server) -> dict[str, Any]:
    """
    A page joins the room and hears "before"; the reaper disconnects it;
    while it is down, the other page says m1, whispers m2 to its id and says
    m3; then the page's next emit (``rooms``) reconnects it, and the other
    page says "after" and whispers "end" to it. What the page saw.
    """
    receiver, sender = await open_pages(browser, server)
    sent, received = record_frames(receiver)
    try:
        sender_id, _ = await open_room(sender)
        receiver_id, joined = await open_room(receiver, ROOM)
        assert ROOM in joined
        await say(sender, "before")
        await page_until(receiver, "() => got.length === 1", "the event before the reap")
        # Both pages idle past IDLE_TIME: the reaper disconnects both.
        await reaped(receiver)
        await reaped(sender)
        # The sender's first emit reconnects it (and, with recovery on,
        # recovers it: same id).
        await say(sender, "m1")
        await say(sender, "m2", to=receiver_id)
        await say(sender, "m3")
        # The receiver's next emit reconnects it.
        rooms = await receiver.page.evaluate("() => room.emitWithAck('rooms')")
        await say(sender, "after")
        current_id = await receiver.page.evaluate("() => room.id")
        await say(sender, "end", to=current_id)
        await page_until(receiver, "() => got.length && got[got.length - 1][1] === 'end'", "the whisper after it all")
        return {
            "receiver_id": receiver_id,
            "sender_id": await sender.page.evaluate("() => room.id"),
            "old_sender_id": sender_id,
            "joined": joined,
            "rooms": rooms,
            "state": await receiver.page.evaluate("() => [room.id, room.recovered, seen.connects, seen.reasons]"),
            "got": await got(receiver),
            "sent": sent,
            "received": received,
        }
    finally:
        for tab in (receiver, sender):
            await tab.page.context.close()
            assert tab.uncaught == []


async def test_a_reaped_socket_recovers_on_its_next_emit_with_exactly_what_it_missed(
    browser: Any, recovering_server: Server
) -> None:
    log_start = len(recovering_server.log())
    seen = await reap_and_miss(browser, recovering_server)
    receiver_id, sender_id = seen["receiver_id"], seen["sender_id"]
    assert sender_id == seen["old_sender_id"]
    # The same socket: its id, its rooms (it did not join again), recovered.
    assert seen["state"] == [receiver_id, True, 2, ["io server disconnect"]]
    assert seen["rooms"] == seen["joined"]
    # Every event once, in order, with the arguments the server emitted:
    # the offsets the server added are not among them.
    assert seen["got"] == [
        ["said", "before", sender_id],
        ["said", "m1", sender_id],
        ["whispered", "m2", sender_id],
        ["said", "m3", sender_id],
        ["said", "after", sender_id],
        ["whispered", "end", sender_id],
    ]
    # On the wire: each event ends with its offset. The reconnect's CONNECT
    # carried the pid of the first reply and the offset of the last event
    # before the reap; the second reply named the same pid.
    events = payloads(seen["received"], EVENT_OF_ROOM)
    assert [event[:-1] for event in events] == seen["got"]
    offsets = [event[-1] for event in events]
    assert all(isinstance(offset, str) for offset in offsets) and len(set(offsets)) == len(offsets)
    first_reply, second_reply = payloads(seen["received"], CONNECT_TO_ROOM)
    assert first_reply["sid"] == second_reply["sid"] == receiver_id
    assert first_reply["pid"] == second_reply["pid"]
    assert connects(seen["sent"]) == [
        CONNECT_TO_ROOM,
        CONNECT_TO_ROOM + json.dumps({"pid": first_reply["pid"], "offset": offsets[0]}, separators=(",", ":")),
    ]
    assert "not recovered" not in recovering_server.log()[log_start:]


async def test_with_recovery_off_a_reaped_socket_comes_back_fresh_and_events_are_unchanged(
    browser: Any, reaping_server: Server
) -> None:
    seen = await reap_and_miss(browser, reaping_server)
    sender_id = seen["sender_id"]
    # A new socket, in no room: what was said meanwhile, and after, is not
    # for it. A trailing string argument ("before" ends with the sender's
    # id) reaches the listeners as sent.
    receiver_id, recovered, connect_count, reasons = seen["state"]
    assert receiver_id != seen["receiver_id"]
    assert [recovered, connect_count, reasons] == [False, 2, ["io server disconnect"]]
    assert ROOM not in seen["rooms"]
    assert seen["got"] == [["said", "before", seen["old_sender_id"]], ["whispered", "end", sender_id]]
    assert sender_id != seen["old_sender_id"]
    # Events as emitted, replies without a pid, CONNECTs without a payload.
    assert [event for event in payloads(seen["received"], EVENT_OF_ROOM)] == seen["got"]
    assert payloads(seen["received"], CONNECT_TO_ROOM) == [{"sid": seen["receiver_id"]}, {"sid": receiver_id}]
    assert connects(seen["sent"]) == [CONNECT_TO_ROOM, CONNECT_TO_ROOM]


async def test_a_socket_that_missed_too_much_comes_back_new_and_its_offsets_start_over(
    browser: Any, recovering_server: Server
) -> None:
    log_start = len(recovering_server.log())
    receiver, sender = await open_pages(browser, recovering_server)
    sent, received = record_frames(receiver)
    try:
        await open_room(sender)
        receiver_id, _ = await open_room(receiver, ROOM)
        await say(sender, "before")
        await page_until(receiver, "() => got.length === 1", "the event before the reap")
        await reaped(receiver)
        await reaped(sender)
        # More than RECOVERY_MAX_EVENTS (5): the server cannot replay them all.
        await say(sender, *[f"m{number}" for number in range(8)])
        assert await receiver.page.evaluate("() => room.emitWithAck('rooms')") == []
        new_id, recovered = await receiver.page.evaluate("() => [room.id, room.recovered]")
        assert new_id != receiver_id and recovered is False
        assert len(await got(receiver)) == 1
        # The new socket got no event: reaped again, it comes back with its
        # pid and no offset (the old socket's offset means nothing to it).
        await page_until(receiver, "() => seen.reasons.length === 2", "the second reap", timeout=10)
        assert await receiver.page.evaluate("() => room.emitWithAck('rooms')") == []
        assert await receiver.page.evaluate("() => [room.id, room.recovered, seen.connects]") == [new_id, True, 3]
    finally:
        for tab in (receiver, sender):
            await tab.page.context.close()
            assert tab.uncaught == []
    replies = payloads(received, CONNECT_TO_ROOM)
    assert [reply["sid"] for reply in replies] == [receiver_id, new_id, new_id]
    assert replies[0]["pid"] != replies[1]["pid"] == replies[2]["pid"]
    assert [json.loads(frame[len(CONNECT_TO_ROOM) :]) for frame in connects(sent)[1:]] == [
        {"pid": replies[0]["pid"], "offset": payloads(received, EVENT_OF_ROOM)[0][-1]},
        {"pid": replies[1]["pid"]},
    ]
    assert "a replay would have a hole in it" in recovering_server.log()[log_start:]


async def test_a_lost_websocket_reconnects_by_itself_and_recovers(
    browser: Any, recovering_server_without_reaper: Server
) -> None:
    server = recovering_server_without_reaper
    log_start = len(server.log())
    receiver, sender = await open_pages(browser, server)
    # The receiver's WebSockets go through the test, which can cut one, and
    # hold the next one back until the test lets it through.
    cut: list[Any] = []
    let_through = asyncio.Event()
    let_through.set()

    async def route(page_side: Any) -> None:
        await let_through.wait()
        cut.append((page_side, page_side.connect_to_server()))

    await receiver.page.route_web_socket(lambda url: "/socket.io/" in url, route)
    try:
        sender_id, _ = await open_room(sender)
        receiver_id, joined = await open_room(receiver, ROOM)
        assert ROOM in joined
        await say(sender, "before")
        await page_until(receiver, "() => got.length === 1", "the event before the cut")
        let_through.clear()
        page_side, server_side = cut[0]
        await server_side.close()
        await page_side.close()
        await page_until(receiver, "() => seen.reasons.length === 1", "the disconnect of the cut")
        assert await receiver.page.evaluate("() => [seen.reasons, room.connected]") == [["transport close"], False]
        # Missed while the runtime's next WebSocket waits.
        await say(sender, "m1")
        await say(sender, "m2", to=receiver_id)
        await say(sender, "m3")
        let_through.set()
        await page_until(receiver, "() => seen.connects === 2", "the reconnect")
        await say(sender, "after", to=receiver_id)
        await page_until(receiver, "() => got.length && got[got.length - 1][1] === 'after'", "the whisper after it")
        assert await receiver.page.evaluate("() => [room.id, room.recovered]") == [receiver_id, True]
        assert await got(receiver) == [
            ["said", "before", sender_id],
            ["said", "m1", sender_id],
            ["whispered", "m2", sender_id],
            ["said", "m3", sender_id],
            ["whispered", "after", sender_id],
        ]
        assert len(cut) == 2
        assert await receiver.page.evaluate("() => room.emitWithAck('rooms')") == joined
    finally:
        for tab in (receiver, sender):
            await tab.page.context.close()
            assert tab.uncaught == []
    assert "not recovered" not in server.log()[log_start:]
