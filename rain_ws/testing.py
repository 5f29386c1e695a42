"""
A test client for your own handlers.

:class:`SocketTestClient` runs the project's websocket application in the
test's own event loop, through Channels' :class:`WebsocketCommunicator`, and
speaks the Socket.IO protocol to it, so a handler can be tested in a few
lines without a server::

    from rain_ws.testing import SocketTestClient, create_session

    async def test_save_note():
        session_key = await create_session({"notes": []})
        async with SocketTestClient("/notes/1.0/notes", session=session_key) as client:
            assert await client.receive("info") == [{"count": 0}]
            assert await client.call("save", "x") == [None, {"count": 1}]

Handlers, listeners and the session store run in worker threads with
database connections of their own, so they see only what is committed: a
test that creates rows they must see (a user for :func:`login_session`, data a
sync listener reads) needs a test case that commits (Django's
``TransactionTestCase``, or pytest-django's ``transaction=True``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from . import protocol
from .conf import get_settings

__all__ = ["ConnectionRefused", "SocketTestClient", "create_session", "login_session"]


class ConnectionRefused(Exception):
    """
    The server answered the CONNECT with CONNECT_ERROR: ``data`` is its
    payload, ``code`` the refusal's code (``data["data"]["code"]``, such as
    ``"session_required"``; ``None`` when it has none).
    """

    def __init__(self, data: Any) -> None:
        message = data.get("message") if isinstance(data, dict) else data
        super().__init__(message)
        self.data = data
        details = data.get("data") if isinstance(data, dict) else None
        self.code: str | None = details.get("code") if isinstance(details, dict) else None


def _create_session(data: dict[str, Any] | None) -> str:
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store.update(data or {})
    store.save()
    return store.session_key


async def create_session(data: dict[str, Any] | None = None) -> str:
    """Save a new session holding ``data``; return its key, for ``session=``."""
    return await sync_to_async(_create_session, thread_sensitive=False)(data)


def _login_session(user: Any, backend: str | None) -> str:
    from django.contrib.auth import login
    from django.http import HttpRequest

    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    login(request, user, backend or settings.AUTHENTICATION_BACKENDS[0])
    request.session.save()
    return request.session.session_key


async def login_session(user: Any, backend: str | None = None) -> str:
    """Save a session in which ``user`` is logged in, as Django's ``login()`` does; return its key."""
    return await sync_to_async(_login_session, thread_sensitive=False)(user, backend)


class SocketTestClient:
    """
    A Socket.IO client connected to one channel of the project, in process.

    ``session`` is a session key (see :func:`create_session` and
    :func:`login_session`) sent as the session cookie; ``auth`` is the CONNECT
    payload; ``headers`` are extra handshake headers, as ``(name, value)``
    byte pairs. Entering the context connects, and raises
    :class:`ConnectionRefused` when the server refuses the CONNECT.
    """

    def __init__(
        self,
        channel: str,
        *,
        session: str | None = None,
        auth: dict[str, Any] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        application: Any = None,
        timeout: float = 5.0,
    ) -> None:
        self.channel = channel
        self.timeout = timeout
        handshake_headers = list(headers or [])
        if session is not None:
            cookie = f"{settings.SESSION_COOKIE_NAME}={session}".encode("latin-1")
            handshake_headers.append((b"cookie", cookie))
        if application is None:
            from .routing import websocket_application

            application = websocket_application()
        self._communicator = WebsocketCommunicator(
            application, f"{get_settings().PATH}?EIO=4&transport=websocket", handshake_headers
        )
        self._auth = auth
        self._events: deque[tuple[str, list[Any]]] = deque()
        self._acks: dict[int, list[Any]] = {}
        self._next_ack = 0
        self.sid: str | None = None
        self.disconnected = False
        #: With ``RECOVERY_WINDOW`` on: the socket's private id and the offset
        #: of the last event received (taken off the event's arguments, as
        #: the official client and rain.js do), sent back by :meth:`reconnect`;
        #: and whether the last CONNECT recovered the socket.
        self.pid: str | None = None
        self.offset: str | None = None
        self.recovered = False
        if auth is not None and "pid" in auth:
            # A recovery on a new connection: auth={"pid": ..., "offset": ...}.
            self._auth = {key: value for key, value in auth.items() if key not in ("pid", "offset")}
            self.pid, self.offset = auth["pid"], auth.get("offset")

    async def __aenter__(self) -> SocketTestClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        connected, _ = await self._communicator.connect(self.timeout)
        if not connected:
            raise ConnectionRefused("the WebSocket handshake was refused")
        opening = await self._communicator.receive_from(self.timeout)
        if not opening.startswith(protocol.EIO_OPEN):
            raise AssertionError(f"expected the Engine.IO open packet, got {opening!r}")
        try:
            await self.reconnect()
        except ConnectionRefused:
            await self._communicator.disconnect()
            raise

    async def reconnect(self) -> None:
        """
        Connect the channel again on the same WebSocket, as a client does
        after the server disconnected it; raise :class:`ConnectionRefused`
        when the server answers with CONNECT_ERROR.
        """
        self.disconnected = False
        auth = self._auth
        if self.pid is not None:
            auth = {**(auth or {}), "pid": self.pid}
            if self.offset is not None:
                auth["offset"] = self.offset
        await self._send(protocol.CONNECT, auth)
        while True:
            packet = await self._next_packet()
            if packet.namespace != self.channel:
                continue
            if packet.type == protocol.CONNECT:
                self.sid = packet.data["sid"]
                pid = packet.data.get("pid")
                self.recovered = pid is not None and pid == self.pid
                if not self.recovered:
                    self.offset = None
                self.pid = pid
                return
            if packet.type == protocol.CONNECT_ERROR:
                self.disconnected = True
                raise ConnectionRefused(packet.data)

    async def emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` without asking for an ack."""
        await self._send(protocol.EVENT, [event, *args])

    async def call(self, event: str, *args: Any) -> list[Any]:
        """Emit ``event`` and return the ack's arguments (``[error, result]`` for rain_ws listeners)."""
        ack_id = self._next_ack
        self._next_ack += 1
        await self._send(protocol.EVENT, [event, *args], ack_id)
        while ack_id not in self._acks:
            await self._read()
        return self._acks.pop(ack_id)

    async def receive(self, event: str | None = None) -> list[Any]:
        """
        The arguments of the next event the server emitted (of ``event`` when
        given: earlier ones of other names are skipped).
        """
        while True:
            while self._events:
                name, args = self._events.popleft()
                if event is None or name == event:
                    return args
            await self._read()

    async def received_nothing(self, wait: float = 0.1) -> bool:
        """Whether no event arrives within ``wait`` seconds."""
        if self._events:
            return False
        try:
            await asyncio.wait_for(self._read(), wait)
        except TimeoutError:
            return True
        return not self._events

    async def disconnect(self) -> None:
        """Leave the channel (a Socket.IO DISCONNECT), keeping the connection."""
        self.pid = self.offset = None  # the server forgets a socket its client left
        await self._send(protocol.DISCONNECT)

    async def close(self) -> None:
        """Close the WebSocket."""
        await self._communicator.disconnect()

    async def _send(self, type: int, data: Any = None, id: int | None = None) -> None:
        text, buffers = protocol.encode_packet(type, self.channel, data, id)
        await self._communicator.send_to(text_data=text)
        for buffer in buffers:
            await self._communicator.send_to(bytes_data=buffer)

    async def _next_packet(self) -> protocol.Packet:
        while True:
            frame = await self._communicator.receive_from(self.timeout)
            if frame == protocol.EIO_PING:
                await self._communicator.send_to(text_data=protocol.EIO_PONG)
                continue
            if not isinstance(frame, str) or not frame.startswith(protocol.EIO_MESSAGE):
                raise AssertionError(f"unexpected frame {frame!r}")
            packet = protocol.decode_packet(frame[1:])
            if packet.attachments:
                buffers = [await self._communicator.receive_from(self.timeout) for _ in range(packet.attachments)]
                packet = protocol.reconstruct(packet, buffers)
            return packet

    async def _read(self) -> None:
        if self.disconnected:
            raise ConnectionError(f"the server disconnected {self.channel}")
        packet = await self._next_packet()
        if packet.namespace != self.channel:
            return
        if packet.type == protocol.EVENT:
            args = packet.data[1:]
            if self.pid is not None and packet.id is None and args and isinstance(args[-1], str):
                self.offset = args.pop()
            self._events.append((packet.data[0], args))
        elif packet.type == protocol.ACK:
            self._acks[packet.id] = packet.data  # type: ignore[index]
        elif packet.type == protocol.DISCONNECT:
            self.disconnected = True
            raise ConnectionError(f"the server disconnected {self.channel}")
        elif packet.type == protocol.CONNECT_ERROR:
            # An event sent while not connected (after a DISCONNECT).
            self.disconnected = True
            raise ConnectionRefused(packet.data)
