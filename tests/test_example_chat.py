"""
The example's chat channel, spoken to by python-socketio clients with the
session cookie the chat page gives: ``new-message`` reaches everyone on the
channel, ``say`` reaches the others in a room, and names come from the
session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import socketio

from tests.support.servers import Server
from tests.test_example_project import CHANNEL, example_server, session_cookie

__all__ = ["example_server"]

EVENTS = ("hello", "message", "room-message", "joined", "left")


class Client:
    """A chat client and the queue of what the server sent it, as ``(event, payload)``."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        for event in EVENTS:
            self.sio.on(event, self._recorder(event), namespace=CHANNEL)

    def _recorder(self, event: str) -> Any:
        return lambda data: self.events.put_nowait((event, data))

    @property
    def sid(self) -> str:
        return self.sio.get_sid(CHANNEL)

    async def call(self, event: str, *args: Any) -> Any:
        return await self.sio.call(event, args[0] if len(args) == 1 else args, namespace=CHANNEL, timeout=5)

    async def next(self) -> tuple[str, Any]:
        return await asyncio.wait_for(self.events.get(), 5)


@asynccontextmanager
async def chat_client(server: Server) -> AsyncIterator[Client]:
    """A connected client with a session of its own, its hello consumed."""
    client = Client()
    await client.sio.connect(
        server.url,
        namespaces=[CHANNEL],
        transports=["websocket"],
        headers={"Cookie": session_cookie(server)},
        wait_timeout=5,
    )
    try:
        assert await client.next() == ("hello", {"message": "Hello Sockets!"})
        yield client
    finally:
        await client.sio.disconnect()


async def test_everyone_hears_a_new_message(example_server: Server) -> None:
    async with chat_client(example_server) as ada, chat_client(example_server) as bob:
        me = await ada.call("whoami")
        assert me[0] is None
        assert me[1]["id"] == ada.sid
        assert me[1]["rooms"] == []
        assert me[1]["name"].startswith("Guest ")
        assert await ada.call("new-message", {"text": "hi all"}) == (None, {"stored": True})
        line = {"text": "hi all", "name": me[1]["name"], "from": ada.sid}
        assert await ada.next() == ("message", line)
        assert await bob.next() == ("message", line)


async def test_rooms_reach_their_members_only(example_server: Server) -> None:
    async with (
        chat_client(example_server) as ada,
        chat_client(example_server) as bob,
        chat_client(example_server) as carol,
    ):
        assert await bob.call("say", "lobby", "too early") == (
            {"message": "join the room first", "code": "not_in_room"},
            None,
        )
        assert await ada.call("join", "lobby") == (None, {"rooms": ["lobby"]})
        assert await bob.call("join", "lobby") == (None, {"rooms": ["lobby"]})
        bob_name = (await bob.call("whoami"))[1]["name"]
        assert await ada.next() == ("joined", {"room": "lobby", "name": bob_name, "from": bob.sid})
        assert await bob.call("say", "lobby", "hi lobby") == (None, {"sent": True})
        assert await ada.next() == (
            "room-message",
            {"room": "lobby", "text": "hi lobby", "name": bob_name, "from": bob.sid},
        )
        # Carol is in no room: the next thing she hears is Bob's line to everyone.
        assert await bob.call("new-message", {"text": "hi all"}) == (None, {"stored": True})
        assert (await carol.next())[0] == "message"
        assert (await ada.next())[0] == "message"
        assert await bob.call("leave", "lobby") == (None, {"rooms": []})
        assert await ada.next() == ("left", {"room": "lobby", "name": bob_name, "from": bob.sid})
        # Joining twice tells the room once.
        assert await ada.call("join", "lobby") == (None, {"rooms": ["lobby"]})
        assert await carol.call("join", "lobby") == (None, {"rooms": ["lobby"]})
        assert (await ada.next())[0] == "joined"


async def test_bad_input_is_refused(example_server: Server) -> None:
    invalid = {"message": "the text must be a non-empty string", "code": "invalid"}
    async with chat_client(example_server) as ada:
        for bad in ("hi", {"text": ""}, {"text": 1}, None):
            assert await ada.call("new-message", bad) == (invalid, None)
        assert await ada.call("new-message", {"text": "x" * 2001}) == (
            {"message": "the text is over 2000 characters", "code": "invalid"},
            None,
        )
        assert (await ada.call("join", ""))[0]["code"] == "invalid_room"
        assert (await ada.call("join", ["lobby"]))[0]["code"] == "invalid_room"
        assert await ada.call("join", "lobby") == (None, {"rooms": ["lobby"]})
        assert await ada.call("say", "lobby", "   ") == (invalid, None)
        assert await ada.call("leave", ["lobby"]) == (None, {"rooms": ["lobby"]})
