"""
The object handlers see: one client connected to one channel.

A :class:`Socket` lives from the client's CONNECT on a namespace until either
side disconnects it or the connection under it goes away. Its events are
handled one at a time, in arrival order, by a task that exists only while
there is something to handle, so a slow listener holds up its own socket and
nothing else.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from time import perf_counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from . import protocol
from .exceptions import AckTimeout, RainError, SocketDisconnected
from .metrics import metrics
from .rooms import check_room, check_target, current_hub
from .sessions import (
    SESSION_EXPIRED,
    SESSION_UNAVAILABLE,
    SessionExpired,
    SocketSession,
    is_signed_cookie_engine,
    load_session,
    save_session,
    store_failed,
    store_worked,
)

if TYPE_CHECKING:
    from .consumer import SocketIOConsumer
    from .registry import Channel

__all__ = ["Ack", "Socket"]

logger = logging.getLogger("rain_ws")

Listener = Callable[..., Any]

#: Seconds between the CONNECT reply and the handlers' start (see _connect).
CONNECT_FLUSH_DELAY = 0.001


class QueueFull(Exception):
    """A socket's queue of unhandled events is over its bound."""


class Ack:
    """
    Return ``Ack(*args)`` from a listener to ack exactly ``args``, instead of
    RAIN's ``(error, result)`` pair; plain Socket.IO clients expect this.
    """

    __slots__ = ("args",)

    def __init__(self, *args: Any) -> None:
        self.args = list(args)


def _call_with_database(function: Callable[..., Any], *args: Any) -> Any:
    close_old_connections()
    try:
        return function(*args)
    finally:
        close_old_connections()


async def run_sync(function: Callable[..., Any], *args: Any) -> Any:
    """
    Run a plain ``def`` handler or listener in a worker thread.

    Each call may take any thread of the pool, so one slow sync listener does
    not hold up the others; database connections are closed around the call,
    as Django does around a request, so the ORM is safe to use.
    """
    return await sync_to_async(_call_with_database, thread_sensitive=False)(function, *args)


class Emitter:
    """Emits from a socket to rooms, or to its whole channel, leaving the socket out."""

    __slots__ = ("_rooms", "_socket")

    def __init__(self, socket: Socket, rooms: tuple[str, ...]) -> None:
        self._socket = socket
        self._rooms = rooms

    def to(self, room: str) -> Emitter:
        return Emitter(self._socket, (*self._rooms, check_target(room)))

    async def emit(self, event: str, *args: Any) -> None:
        if not isinstance(event, str) or event in protocol.RESERVED_EVENTS:
            raise ValueError(f"{event!r} cannot be emitted: it is not a user event name")
        socket = self._socket
        await socket._hub.emit(socket.channel, event, args, self._rooms, exclude=socket.id)


class Socket:
    """
    One client on one channel.

    ``id`` is the socket's Socket.IO id, ``channel`` the public channel name
    (the namespace), ``auth`` the payload of the client's CONNECT (``{}``
    when it sent none), ``scope`` the ASGI scope of the connection, ``user``
    the session's user as of the CONNECT (anonymous without one), and
    ``session`` the session's data: as of the CONNECT, or, on channels with
    ``use_session``, reloaded before each event and saved after it.
    """

    # Slots: a server holds many sockets, most of them idle.
    __slots__ = (
        "_acks",
        "_channel",
        "_connection",
        "_disconnect_listeners",
        "_gone",
        "_hub",
        "_listeners",
        "_next_ack",
        "_queue",
        "_queued_bytes",
        "_read_only_reason",
        "_session_key",
        "_stats",
        "_worker",
        "auth",
        "channel",
        "connected",
        "id",
        "rooms",
        "scope",
        "session",
        "user",
    )

    def __init__(
        self, connection: SocketIOConsumer, channel: Channel, sid: str, auth: dict[str, Any] | None
    ) -> None:
        self.id = sid
        self.channel = channel.name
        self.auth = auth
        self.scope: dict[str, Any] = connection.scope
        self.user: Any = None
        self.session = SocketSession({}, "the socket is not connected yet")
        self.connected = False
        self._session_key: str | None = None
        self._read_only_reason: str | None = None
        self._channel = channel
        self._connection = connection
        self._listeners: dict[Any, tuple[Listener, bool]] = {}
        self._disconnect_listeners: list[tuple[Listener, bool]] = []
        self._queue: deque[tuple[protocol.Packet, int]] | None = None  # made at the first event
        self._queued_bytes = 0
        self._worker: asyncio.Task[None] | None = None
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._next_ack = 0
        self._gone = False
        self._stats = metrics.channel(channel.name)
        self._hub = current_hub()
        #: The rooms of this channel the socket is in (replaced, not changed
        #: in place, when it joins or leaves: most sockets join none).
        self.rooms: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"<Socket {self.id} on {self.channel}>"

    @property
    def busy(self) -> bool:
        """A listener is running or queued, or a ``call()`` awaits its ack."""
        return self._worker is not None or bool(self._queue) or bool(self._acks)

    # -- the handler API -------------------------------------------------

    def on(self, event: str, listener: Listener | None = None) -> Any:
        """
        Call ``listener`` with the event's arguments whenever the client emits
        ``event``; use it as a decorator or call it with the listener.

        What the listener returns is acked to the client as ``[null, result]``
        when the client asked for an ack; ``raise RainError(...)`` acks
        ``[{"message", "code"}, null]``. ``"disconnect"`` is the socket's own
        event: its listeners get the reason once the socket is gone.
        """

        def register(function: Listener) -> Listener:
            if not callable(function):
                raise TypeError(f"socket.on({event!r}) needs a callable, got {function!r}")
            entry = (function, inspect.iscoroutinefunction(function))
            if event == "disconnect":
                self._disconnect_listeners.append(entry)
            else:
                self._listeners[event] = entry
            return function

        if listener is None:
            return register
        register(listener)
        return None

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` (JSON values; bytes anywhere) to the client."""
        if not isinstance(event, str) or event in protocol.RESERVED_EVENTS:
            raise ValueError(f"{event!r} cannot be emitted: it is not a user event name")
        if self.connected:
            self._stats.events_out += 1
            self._connection.send_packet(protocol.EVENT, self.channel, [event, *args])

    async def call(self, event: str, *args: Any, timeout: float = 60.0) -> Any:
        """
        Emit ``event`` and wait for the client's ack.

        Return the ack's argument (a tuple when the client acked several,
        ``None`` for none). Raise :class:`~rain_ws.AckTimeout` after
        ``timeout`` seconds and :class:`~rain_ws.SocketDisconnected` if the
        socket goes away first.
        """
        if not isinstance(event, str) or event in protocol.RESERVED_EVENTS:
            raise ValueError(f"{event!r} cannot be emitted: it is not a user event name")
        if not self.connected:
            raise SocketDisconnected(f"{self!r} is not connected")
        ack_id = self._next_ack
        self._next_ack += 1
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        self._stats.events_out += 1
        try:
            self._connection.send_packet(protocol.EVENT, self.channel, [event, *args], ack_id)
            try:
                result = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise AckTimeout(f"no ack for {event!r} from {self!r} within {timeout} s") from None
        finally:
            self._acks.pop(ack_id, None)
        if not result:
            return None
        return result[0] if len(result) == 1 else tuple(result)

    async def join(self, room: str) -> None:
        """
        Put the socket in ``room`` of its channel; once this returns, emits to
        the room from any process reach it.
        """
        check_room(room)
        if self.connected:
            await self._hub.join(self, room)

    async def leave(self, room: str) -> None:
        """Take the socket out of ``room``."""
        check_target(room)
        self._hub.leave(self, room)

    def to(self, room: str) -> Emitter:
        """
        Emit to everyone in ``room`` (a room of this channel, or a socket id)
        but this socket: ``await socket.to("lobby").emit("news", data)``.
        Chain ``.to()`` to reach several rooms; each socket gets it once.
        """
        return Emitter(self, (check_target(room),))

    @property
    def broadcast(self) -> Emitter:
        """Emit to every socket of this channel but this one, in every process."""
        return Emitter(self, ())

    def send_frames(self, text: str, buffers: list[bytes]) -> None:
        """Send an already encoded event (a broadcast, encoded once for all)."""
        if self.connected:
            self._stats.events_out += 1
            self._connection.send_frames(text, buffers)

    async def disconnect(self) -> None:
        """Disconnect the client from this channel; its other channels stay connected."""
        if self.connected:
            self._connection.send_packet(protocol.DISCONNECT, self.channel)
            self._connection.drop_socket(self, "server namespace disconnect")

    # -- driven by the connection ----------------------------------------

    def receive(self, packet: protocol.Packet, size: int) -> int:
        """
        Queue an incoming event of ``size`` bytes; it is handled after those
        before it. Return how many events are now queued, or raise
        :class:`QueueFull` when the queue is over ``MAX_QUEUED_EVENTS`` or
        ``MAX_QUEUED_BYTES``: a client that sends faster than its listeners
        handle would otherwise grow the server's memory without bound.
        """
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        settings = self._connection.settings
        self._queued_bytes += size
        if len(queue) >= settings.MAX_QUEUED_EVENTS:
            raise QueueFull(f"over MAX_QUEUED_EVENTS ({settings.MAX_QUEUED_EVENTS}) events queued on {self.channel}")
        if self._queued_bytes > settings.MAX_QUEUED_BYTES:
            raise QueueFull(
                f"over MAX_QUEUED_BYTES ({settings.MAX_QUEUED_BYTES}) bytes of events queued on {self.channel}"
            )
        queue.append((packet, size))
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        return len(queue)

    def start(self) -> None:
        """Authorize, answer the CONNECT and run the handlers, ahead of any event."""
        self._worker = asyncio.get_running_loop().create_task(self._work(connecting=True))

    def resolve_ack(self, packet: protocol.Packet) -> None:
        future = self._acks.get(packet.id)  # type: ignore[arg-type]
        if future is not None and not future.done():
            future.set_result(packet.data)

    def close(self, reason: str) -> None:
        """
        End the socket: drop its queued events, cancel the listener that is
        running (a sync listener's thread runs to its end), fail pending
        ``call()``s, and start its ``disconnect`` listeners with ``reason``.
        """
        if self._gone:
            return
        self._gone = True
        was_connected = self.connected
        self.connected = False
        if was_connected:
            self._stats.sockets -= 1
            self._hub.remove_socket(self)
        if self._queue is not None:
            self._queue.clear()
            self._queued_bytes = 0
        worker, self._worker = self._worker, None
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
        for future in self._acks.values():
            if not future.done():
                future.set_exception(SocketDisconnected(f"{self!r} disconnected: {reason}"))
        if was_connected and self._disconnect_listeners:
            # In a task of their own: a slow one must not hold up the
            # connection's other namespaces.
            asyncio.get_running_loop().create_task(self._run_disconnect_listeners(reason))

    async def _run_disconnect_listeners(self, reason: str) -> None:
        for function, is_async in self._disconnect_listeners:
            try:
                if is_async:
                    await function(reason)
                else:
                    await run_sync(function, reason)
            except Exception:
                logger.exception("disconnect listener %r of %r raised", function, self)

    async def _work(self, connecting: bool = False) -> None:
        try:
            if connecting and not await self._connect():
                return
            queue = self._queue
            while queue and not self._gone:
                packet, size = queue.popleft()
                self._queued_bytes -= size
                await self._handle(packet)
                if queue:
                    # Let the other connections' work run between this
                    # socket's queued events: a listener that never awaits
                    # must not hold the event loop for a whole backlog.
                    await asyncio.sleep(0)
        finally:
            if asyncio.current_task() is self._worker:
                self._worker = None

    async def _connect(self) -> bool:
        connection = self._connection
        channel = self._channel
        try:
            identity = await connection.identity()
        except Exception as error:
            store_failed(error)
            connection.refuse(self, SESSION_UNAVAILABLE["message"])
            return False
        if channel.require_session and not identity.live:
            connection.refuse(self, "session required")
            return False
        self.user = identity.user
        if channel.login_required and not getattr(self.user, "is_authenticated", False):
            connection.refuse(self, "login required")
            return False
        data = identity.data
        if not identity.live:
            self._read_only_reason = (
                "this socket has no session, and a socket cannot create one: "
                "the page must give the browser its session cookie first"
            )
        elif not channel.use_session:
            self._read_only_reason = "socket.session is read-only on channels without use_session = True"
        elif is_signed_cookie_engine():
            self._read_only_reason = (
                "the signed_cookies session backend keeps the session in the browser's "
                "cookie, which a socket cannot update"
            )
        else:
            self._session_key = identity.session_key
            try:
                data = await run_sync(load_session, identity.session_key)
            except SessionExpired:
                connection.refuse(self, "session required" if channel.require_session else SESSION_EXPIRED["message"])
                return False
            except Exception as error:
                store_failed(error)
                connection.refuse(self, SESSION_UNAVAILABLE["message"])
                return False
            store_worked()
        self.session = SocketSession(dict(data), self._read_only_reason)

        for handler in channel.handlers:
            if handler.authorize is None:
                continue
            try:
                if handler.authorize_is_async:
                    allowed = await handler.authorize(self)
                else:
                    allowed = await run_sync(handler.authorize, self)
            except RainError as error:
                connection.refuse(self, error.message)
                return False
            except Exception:
                logger.exception("authorize() of %s raised for %r", handler.module, self)
                connection.refuse(self, "not authorized")
                return False
            if not allowed:
                connection.refuse(self, "not authorized")
                return False
        if not connection.accept(self):
            return False
        self.connected = True
        self._stats.sockets += 1
        await self._hub.add_socket(self)
        # Let the CONNECT reply reach the client before the handlers' first
        # emits, rather than in the same TCP read: some clients (the `ws`
        # library the official protocol suite runs on) drop a second frame
        # that arrives in one read with the first. It delays the handlers,
        # not the event loop.
        await asyncio.sleep(CONNECT_FLUSH_DELAY)
        for handler in channel.handlers:
            try:
                if handler.is_async:
                    await handler.function(self)
                else:
                    await run_sync(handler.function, self)
            except Exception:
                self._stats.errors += 1
                logger.exception("websocket handler %s raised for %r", handler.name, self)
        if self._session_key is not None and self.session.modified:
            error = await self._save_session()
            if error is SESSION_EXPIRED:
                connection.end_session()
                return False
        return True

    async def _handle(self, packet: protocol.Packet) -> None:
        event, *args = packet.data
        stats = self._stats
        stats.events_in += 1
        entry = self._listeners.get(event)
        ack_id = packet.id
        if entry is None:
            logger.info("%r: no listener for event %r", self, event)
            if ack_id is not None:
                self._ack(ack_id, [{"message": f"no listener for {event!r}", "code": "unknown_event"}, None])
            return
        session_key = self._session_key
        if session_key is not None:
            try:
                data = await run_sync(load_session, session_key)
            except SessionExpired:
                self._session_ended(ack_id)
                return
            except Exception as error:
                store_failed(error)
                if ack_id is not None:
                    self._ack(ack_id, [SESSION_UNAVAILABLE, None])
                return
            store_worked()
            self.session = SocketSession(data, None)
        function, is_async = entry
        started = perf_counter()
        try:
            if is_async:
                result = await function(*args)
            else:
                result = await run_sync(function, *args)
        except RainError as error:
            stats.observe(perf_counter() - started)
            if ack_id is None:
                logger.info("%r: listener for %r refused: %s", self, event, error.message)
                return
            answer: list[Any] = [error.as_ack(), None]
        except Exception as error:
            stats.observe(perf_counter() - started)
            stats.errors += 1
            logger.exception("%r: listener for %r raised", self, event)
            if ack_id is None:
                return
            message = f"{type(error).__name__}: {error}" if settings.DEBUG else "internal error"
            answer = [{"message": message, "code": "internal_error"}, None]
        else:
            stats.observe(perf_counter() - started)
            answer = result.args if type(result) is Ack else [None, result]
            if session_key is not None and (self.session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
                error = await self._save_session()
                if error is SESSION_EXPIRED:
                    self._session_ended(ack_id)
                    return
                if error is not None:
                    answer = [error, None]
            if ack_id is None:
                return
        self._ack(ack_id, answer)

    async def _save_session(self) -> dict[str, str] | None:
        """Save the listener's session changes; return the ack error if that failed."""
        changed, deleted = self.session.changes()
        try:
            await run_sync(save_session, self._session_key, changed, deleted)
        except SessionExpired:
            return SESSION_EXPIRED
        except (TypeError, ValueError) as error:
            logger.warning("%r: session not saved: %s", self, error)
            return {"message": f"the session cannot store this value: {error}", "code": "session_unserializable"}
        except Exception as error:
            store_failed(error)
            return SESSION_UNAVAILABLE
        store_worked()
        return None

    def _session_ended(self, ack_id: int | None) -> None:
        if ack_id is not None:
            self._ack(ack_id, [SESSION_EXPIRED, None])
        self._connection.end_session()

    def _ack(self, ack_id: int, answer: list[Any]) -> None:
        if not self.connected:
            return
        self._stats.events_out += 1
        try:
            self._connection.send_packet(protocol.ACK, self.channel, answer, ack_id)
        except (TypeError, ValueError) as error:
            logger.error("%r: cannot encode the ack: %s", self, error)
            self._connection.send_packet(
                protocol.ACK,
                self.channel,
                [{"message": "the result cannot be sent: " + str(error), "code": "unserializable"}, None],
                ack_id,
            )

