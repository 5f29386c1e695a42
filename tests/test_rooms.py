"""
Rooms, broadcasts and emits to one socket, within one process.

The rooms component (``tests/project/rooms_app``) drives the room API from
client events. Most tests run the project in the test's own event loop
through :class:`rain_ws.testing.SocketTestClient`, where the process's hub is
at hand; the test settings use Channels' in-memory layer, so delivery is
local. A server emits to local members before it acks the event that caused
the emit, so once a sender's ack is in, everything the emit sends is already
on its way: a client that has nothing queued then got nothing.

Memberships must not outlive their sockets, however those end: the leak
tests go through many connect/join/disconnect cycles, in process and on a
real daphne whose TCP connections are cut without a close, and check that
the hub's counts come back down.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from asgiref.sync import sync_to_async

import rain_ws
from rain_ws.runtime import runtime
from rain_ws.testing import SocketTestClient
from tests.support.servers import Server, run_server
from tests.support.wire import WireClient, wire_client

ROOM = "/rooms/1.0/room"
LOBBY = "/rooms/1.0/lobby"
ECHO = "/echo/2.0/echo"
OK = [None, True]


def hub_state() -> dict[str, Any]:
    """What the hub of this event loop holds (the in-process server's)."""
    process = runtime()
    hub = process.rooms
    return {
        "room_count": hub.room_count(),
        "rooms": {channel: sorted(rooms) for channel, rooms in hub.rooms.items()},
        "sockets": {channel: len(sockets) for channel, sockets in hub.sockets.items()},
        "groups": sorted(process.bridge.groups),
        "sessions": len(process.sessions.sessions),
    }


EMPTY_HUB = {"room_count": 0, "rooms": {}, "sockets": {}, "groups": [], "sessions": 0}


class Clients:
    """Several in-process clients, closed together."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self._stack = stack

    async def connect(self, channel: str = ROOM) -> SocketTestClient:
        return await self._stack.enter_async_context(SocketTestClient(channel))

    async def in_room(self, room: str, channel: str = ROOM) -> SocketTestClient:
        client = await self.connect(channel)
        assert (await client.call("join", room))[0] is None
        return client


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    async with AsyncExitStack() as stack:
        yield Clients(stack)


async def nothing_more(*clients: SocketTestClient) -> bool:
    """Whether none of ``clients`` has an event waiting (see the module docstring)."""
    results = [await client.received_nothing(0.05) for client in clients]
    return all(results)


# -- the room API ---------------------------------------------------------


async def test_room_message_reaches_each_member_once_and_never_the_sender(clients: Clients) -> None:
    sender = await clients.in_room("red")
    members = [await clients.in_room("red") for _ in range(3)]
    elsewhere = await clients.in_room("blue")
    outside = await clients.connect()

    assert await sender.call("say", "red", "hello") == OK

    for member in members:
        assert await member.receive("said") == ["hello", sender.sid]
    assert await nothing_more(sender, *members, elsewhere, outside)


async def test_a_socket_need_not_be_in_a_room_to_send_to_it(clients: Clients) -> None:
    member = await clients.in_room("red")
    outsider = await clients.connect()

    assert await outsider.call("say", "red", "from outside") == OK

    assert await member.receive("said") == ["from outside", outsider.sid]
    assert await nothing_more(member, outsider)


async def test_chained_rooms_reach_each_socket_once(clients: Clients) -> None:
    sender = await clients.in_room("red")
    assert (await sender.call("join", "blue"))[0] is None
    in_both = await clients.in_room("red")
    assert await in_both.call("join", "blue") == [None, ["blue", "red"]]
    only_red = await clients.in_room("red")
    only_blue = await clients.in_room("blue")
    in_neither = await clients.in_room("green")

    assert await sender.call("say_to_both", "red", "blue", "both") == OK

    for client in (in_both, only_red, only_blue):
        assert await client.receive("said") == ["both", sender.sid]
    assert await nothing_more(sender, in_both, only_red, only_blue, in_neither)


async def test_broadcast_reaches_every_socket_of_the_channel_but_the_sender(clients: Clients) -> None:
    sender = await clients.connect()
    others = [await clients.connect(), await clients.in_room("red")]
    lobby = await clients.connect(LOBBY)
    echo = await clients.connect(ECHO)
    assert await echo.receive("hello")

    assert await sender.call("shout", "everyone") == OK

    for other in others:
        assert await other.receive("shouted") == ["everyone", sender.sid]
    assert await nothing_more(sender, *others, lobby, echo)


async def test_emit_to_a_socket_id_reaches_that_socket_only(clients: Clients) -> None:
    sender = await clients.connect()
    target = await clients.connect()
    bystander = await clients.connect()
    target_elsewhere = await clients.connect(LOBBY)

    assert await sender.call("whisper", target.sid, "psst") == OK
    assert await target.receive("whispered") == ["psst", sender.sid]

    # The sender is left out of its own emits, to its own id too; and an id
    # names a socket of the sender's channel only.
    assert await sender.call("whisper", sender.sid, "to myself") == OK
    assert await sender.call("whisper", target_elsewhere.sid, "across channels") == OK
    assert await nothing_more(sender, target, bystander, target_elsewhere)


async def test_rooms_of_the_same_name_in_two_channels_are_apart(clients: Clients) -> None:
    sender = await clients.in_room("red")
    same_channel = await clients.in_room("red")
    other_channel = await clients.in_room("red", LOBBY)

    assert await sender.call("say", "red", "room only") == OK

    assert await same_channel.receive("said") == ["room only", sender.sid]
    assert await nothing_more(other_channel)


async def test_join_and_leave_keep_the_list_of_rooms(clients: Clients) -> None:
    client = await clients.connect()
    assert await client.call("rooms") == [None, []]
    assert await client.call("join", "red") == [None, ["red"]]
    assert await client.call("join", "red") == [None, ["red"]]
    assert await client.call("join", "blue") == [None, ["blue", "red"]]
    assert await client.call("leave", "red") == [None, ["blue"]]
    assert await client.call("leave", "never joined") == [None, ["blue"]]
    assert await client.call("rooms") == [None, ["blue"]]
    assert hub_state()["rooms"] == {ROOM: ["blue"]}


async def test_a_socket_that_left_gets_no_more_room_messages(clients: Clients) -> None:
    sender = await clients.connect()
    leaver = await clients.in_room("red")
    stayer = await clients.in_room("red")

    assert await leaver.call("leave", "red") == [None, []]
    assert await sender.call("say", "red", "after") == OK

    assert await stayer.receive("said") == ["after", sender.sid]
    assert await nothing_more(leaver, stayer)


async def test_server_side_broadcast_to_a_channel_or_a_room(clients: Clients) -> None:
    red = await clients.in_room("red")
    blue = await clients.in_room("blue")
    lobby = await clients.in_room("red", LOBBY)

    await rain_ws.abroadcast(ROOM, "news", {"n": 1}, room="red")
    assert await red.receive("news") == [{"n": 1}]
    assert await nothing_more(red, blue, lobby)

    await rain_ws.abroadcast(ROOM, "news", {"n": 2})
    assert await red.receive("news") == [{"n": 2}]
    assert await blue.receive("news") == [{"n": 2}]
    assert await nothing_more(red, blue, lobby)


async def test_sync_broadcast_from_a_worker_thread(clients: Clients) -> None:
    # What a sync view or signal receiver does: it runs in a worker thread
    # of the server's event loop.
    red = await clients.in_room("red")
    blue = await clients.in_room("blue")

    await sync_to_async(rain_ws.broadcast, thread_sensitive=False)(ROOM, "news", "sync", room="blue")

    assert await blue.receive("news") == ["sync"]
    assert await nothing_more(red, blue)


async def test_sync_broadcast_from_a_thread_of_its_own(clients: Clients) -> None:
    # What a background job started inside the server process does: a plain
    # thread, not one of the event loop's workers.
    red = await clients.in_room("red")

    thread = threading.Thread(target=rain_ws.broadcast, args=(ROOM, "news", "threaded"), kwargs={"room": "red"})
    thread.start()
    await asyncio.to_thread(thread.join)

    assert not await red.received_nothing(2), "the broadcast reached no socket"
    assert await red.receive("news") == ["threaded"]


async def test_broadcast_to_a_channel_without_sockets_does_nothing(clients: Clients) -> None:
    client = await clients.connect()
    await rain_ws.abroadcast("/no/such/channel", "news", 1)
    await rain_ws.abroadcast(LOBBY, "news", 1, room="red")
    assert await nothing_more(client)


# -- room names -------------------------------------------------------------

BAD_ROOMS = {
    "empty": "",
    "too-long": "x" * 201,
    "number": 5,
    "null": None,
    "boolean": True,
    "list": ["red"],
    "object": {"room": "red"},
}


def invalid_room(ack: list[Any]) -> bool:
    error, result = ack
    return result is None and error["code"] == "invalid_room" and "room name" in error["message"]


@pytest.mark.parametrize("room", BAD_ROOMS.values(), ids=BAD_ROOMS.keys())
async def test_a_bad_room_name_is_an_error_ack(clients: Clients, room: Any) -> None:
    client = await clients.in_room("red")
    member = await clients.in_room("red")
    for ack in (
        await client.call("join", room),
        await client.call("leave", room),
        await client.call("say", room, "text"),
        await client.call("say_to_both", "red", room, "text"),
        await client.call("whisper", room, "text"),
    ):
        assert invalid_room(ack), ack
    # Nothing changed, nothing was sent, and the socket still works.
    assert await client.call("rooms") == [None, ["red"]]
    assert await nothing_more(member)
    assert hub_state()["room_count"] == 2


async def test_a_room_name_of_200_characters_is_fine(clients: Clients) -> None:
    room = "é" * 200
    sender = await clients.in_room(room)
    member = await clients.in_room(room)
    assert await sender.call("say", room, "long") == OK
    assert await member.receive("said") == ["long", sender.sid]


# room=None is no room: the whole channel.
SERVER_SIDE_BAD_ROOMS = {name: room for name, room in BAD_ROOMS.items() if room is not None}


@pytest.mark.parametrize("room", SERVER_SIDE_BAD_ROOMS.values(), ids=SERVER_SIDE_BAD_ROOMS.keys())
async def test_a_server_side_broadcast_to_a_bad_room_raises(room: Any) -> None:
    with pytest.raises(rain_ws.RainError) as raised:
        await rain_ws.abroadcast(ROOM, "news", room=room)
    assert raised.value.code == "invalid_room"


# -- no leaks, in process -----------------------------------------------------


async def test_memberships_go_with_their_sockets_in_process() -> None:
    rooms = ["red", "blue", "green"]
    for cycle in range(10):
        async with AsyncExitStack() as stack:
            sockets = [await stack.enter_async_context(SocketTestClient(ROOM)) for _ in range(3)]
            for client in sockets:
                for room in rooms:
                    assert (await client.call("join", room))[0] is None
            assert hub_state()["room_count"] == 9
            # One leaves the channel and keeps its connection, one is
            # disconnected by the server, the last closes its WebSocket.
            await sockets[0].disconnect()
            await sockets[1].emit("bye")
            with pytest.raises(ConnectionError):
                await sockets[1].receive()
            await sockets[2].close()
        # Closing a client waits for its connection to end on the server.
        assert hub_state() == EMPTY_HUB, f"cycle {cycle}"


# -- no leaks, on a real server ---------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A daphne of its own: its hub holds this module's sockets only."""
    with run_server() as server:
        yield server


PREFIX = ROOM + ","
_ack_ids = itertools.count()


async def connect_room(client: WireClient) -> str:
    return await client.connect_namespace(ROOM)


async def call(client: WireClient, event: str, *args: Any) -> Any:
    """Emit ``event`` over the raw wire, asking for an ack, and return the ack's arguments."""
    ack_id = next(_ack_ids)
    await client.send(f"42{PREFIX}{ack_id}" + json.dumps([event, *args]))
    expected = f"43{PREFIX}{ack_id}"
    while True:
        frame = await client.recv(5)
        if isinstance(frame, str) and frame.startswith(expected):
            return json.loads(frame[len(expected):])


def cut(client: WireClient) -> None:
    """Lose the connection the way a crashed client or a dead network does: a TCP reset, no close."""
    transport = client.connection.transport
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def stats_when_settled(observer: WireClient, expected: dict[str, int]) -> dict[str, int]:
    """The server's stats once they equal ``expected``, or the last ones after a few seconds."""
    deadline = time.monotonic() + 5
    while True:
        error, stats = await call(observer, "stats")
        assert error is None
        if stats == expected or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.05)


async def test_memberships_go_with_their_sockets_on_a_real_server(server: Server) -> None:
    async with wire_client(server.ws_url, answer_pings=True) as observer:
        await connect_room(observer)
        # The observer itself: one socket in no room, and its channel's group.
        settled = {"room_count": 0, "rooms": 0, "sockets": 1, "groups": 1, "sessions": 0}
        assert await stats_when_settled(observer, settled) == settled

        for cycle in range(8):
            async with AsyncExitStack() as stack:
                sockets = [
                    await stack.enter_async_context(wire_client(server.ws_url, answer_pings=True))
                    for _ in range(4)
                ]
                for number, client in enumerate(sockets):
                    await connect_room(client)
                    for room in ("red", "blue", f"own-{cycle}-{number}"):
                        error, _ = await call(client, "join", room)
                        assert error is None
                joined = await call(observer, "stats")
                assert joined[1]["room_count"] == 12, joined
                assert joined[1]["sockets"] == 5, joined

                # A clean close, a transport loss, a server-side disconnect,
                # and a namespace DISCONNECT on a connection that stays.
                await sockets[0].connection.close()
                cut(sockets[1])
                await sockets[2].send(f"42{PREFIX}" + json.dumps(["bye"]))
                assert await sockets[2].recv(5) == f"41{PREFIX}"
                await sockets[3].send(f"41{PREFIX}")

                assert await stats_when_settled(observer, settled) == settled, f"cycle {cycle}"
