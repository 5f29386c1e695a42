"""
A raw Engine.IO/Socket.IO client over one WebSocket.

Tests that check the exact frames a server sends, or that send frames no
Socket.IO client library would, talk to the server through this: every frame
goes out and comes back as written, with no codec in between.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["ENGINE_IO_QUERY", "Closed", "Frame", "WireClient", "log_line", "open_connection", "wire_client"]

#: The query string of a WebSocket-only Engine.IO 4 connection.
ENGINE_IO_QUERY = "EIO=4&transport=websocket"

Frame = str | bytes

PING = "2"
PONG = "3"


class Closed(Exception):
    """The server closed the connection before the frame a test waited for."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"connection closed with code {code}")
        self.code = code


class WireClient:
    """
    One raw connection, opened and past the Engine.IO OPEN packet.

    A reader task takes every frame off the connection as it arrives. With
    ``answer_pings`` it answers pings with a pong at once, whatever the test
    is doing meanwhile, so that a connection kept open alongside another is
    not lost to a ping timeout; without it pings are queued like any frame and
    go unanswered unless the test answers them.
    """

    def __init__(self, connection: ClientConnection, handshake: dict[str, Any], answer_pings: bool) -> None:
        self.connection = connection
        self.handshake = handshake
        self.answer_pings = answer_pings
        host, port = connection.local_address[:2]
        #: The client's ``host:port``, as the server names it in its log.
        self.address = f"{host}:{port}"
        self._frames: asyncio.Queue[Frame | None] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.connection:
                if frame == PING and self.answer_pings:
                    await self.connection.send(PONG)
                else:
                    self._frames.put_nowait(frame)
        except ConnectionClosed:
            pass
        finally:
            self._frames.put_nowait(None)

    async def send(self, *frames: Frame) -> None:
        """Send each frame as it is: ``str`` as a text frame, ``bytes`` as a binary one."""
        for frame in frames:
            await self.connection.send(frame)

    async def recv_raw(self, timeout: float = 2.0) -> Frame:
        """
        The next frame, including the pings not answered by the reader; raise
        :class:`Closed` once the server has closed the connection and
        ``TimeoutError`` when nothing comes within ``timeout`` seconds.
        """
        frame = await asyncio.wait_for(self._frames.get(), timeout)
        if frame is None:
            self._frames.put_nowait(None)
            raise Closed(self.connection.close_code)
        return frame

    async def recv(self, timeout: float = 2.0) -> Frame:
        """The next frame that is not a ping."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv_raw(max(0.0, deadline - time.monotonic()))
            if frame != PING:
                return frame

    async def recv_many(self, count: int, timeout: float = 2.0) -> list[Frame]:
        """The next ``count`` frames that are not pings."""
        deadline = time.monotonic() + timeout
        return [await self.recv(max(0.0, deadline - time.monotonic())) for _ in range(count)]

    async def connect_namespace(self, namespace: str = "/", auth: dict[str, Any] | None = None) -> str:
        """Send a Socket.IO CONNECT and return the sid of the server's CONNECT reply."""
        prefix = "" if namespace == "/" else namespace + ","
        await self.send("40" + prefix + ("" if auth is None else json.dumps(auth)))
        reply = await self.recv()
        assert isinstance(reply, str) and reply.startswith("40" + prefix), reply
        return json.loads(reply[2 + len(prefix):])["sid"]

    async def wait_closed(self, timeout: float = 2.0) -> int | None:
        """
        Read until the server closes the connection and return its close code;
        frames read meanwhile are dropped. Raise ``TimeoutError`` when the
        connection is still open after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.recv_raw(max(0.0, deadline - time.monotonic()))
            except Closed as closed:
                return closed.code

    async def aclose(self) -> None:
        """Close the WebSocket from this side and wait for the reader to stop."""
        await self.connection.close()
        await self._reader


def open_connection(url: str, origin: str | None = None) -> Any:
    """
    A bare WebSocket handshake with ``url``: no compression (frames travel at
    their real size), no WebSocket-level pings, no proxy from the environment.
    """
    return connect(
        url,
        origin=origin,  # type: ignore[arg-type]
        compression=None,
        ping_interval=None,
        proxy=None,
        max_size=None,
        open_timeout=5,
        close_timeout=1,
    )


@asynccontextmanager
async def wire_client(
    ws_url: str,
    path: str = "/socket.io/",
    *,
    query: str = ENGINE_IO_QUERY,
    origin: str | None = None,
    answer_pings: bool = False,
) -> AsyncIterator[WireClient]:
    """Open an Engine.IO connection at ``ws_url + path`` and read its OPEN packet."""
    async with open_connection(f"{ws_url}{path}?{query}", origin) as connection:
        opening = await asyncio.wait_for(connection.recv(), 2.0)
        assert isinstance(opening, str) and opening.startswith("0"), opening
        client = WireClient(connection, json.loads(opening[1:]), answer_pings)
        try:
            yield client
        finally:
            await client.aclose()


async def log_line(server: Any, *parts: str, since: int = 0, timeout: float = 2.0) -> str | None:
    """
    The first line of the server's log, from character ``since`` on, that
    contains every one of ``parts``; ``None`` if none does within ``timeout``
    seconds. A server writes its log line around the time it acts, so the
    line may trail the frame a test saw.
    """
    deadline = time.monotonic() + timeout
    while True:
        for line in server.log()[since:].splitlines():
            if all(part in line for part in parts):
                return line
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.02)
