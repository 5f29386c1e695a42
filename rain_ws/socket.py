"""
The object handlers see: one client connected to one channel.

A :class:`Socket` lives from the client's CONNECT on a namespace until either
side disconnects it or the connection under it goes away. This module holds
what handlers and listeners call; running them (the CONNECT, the event
queue, acks) is :mod:`rain_ws.dispatch`'s job, and the connection under a
socket is anything that fits :class:`Connection`.

``emit``, ``join``, ``leave``, ``disconnect`` and ``to(...).emit`` take
effect when called, and return something to await: ``await socket.emit(...)``
in an ``async def`` listener, and a plain ``socket.emit(...)`` in a ``def``
listener (which runs in a worker thread: the call is carried to the event
loop and returns once it is done) are both right.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from . import protocol
from .aio import run_sync
from .conf import RainSettings
from .exceptions import AckTimeout, SocketDisconnected
from .layer import DONE
from .metrics import metrics
from .replay import BUFFERS, TEXT, Entry
from .rooms import NO_ROOMS, Rooms, check_room, check_target
from .sessions import ConnectionSession, SocketSession

if TYPE_CHECKING:
    from .registry import Channel

__all__ = ["Ack", "Connection", "Emitter", "Socket", "SocketState"]

logger = logging.getLogger("rain_ws")

Listener = Callable[..., Any]


class Ack:
    """
    Return ``Ack(*args)`` from a listener to ack exactly ``args``, instead of
    RAIN's ``(error, result)`` pair; plain Socket.IO clients expect this.
    """

    __slots__ = ("args",)

    def __init__(self, *args: Any) -> None:
        self.args = list(args)


class Connection(Protocol):
    """What a socket needs from the Engine.IO session it lives on."""

    scope: dict[str, Any]
    settings: RainSettings
    identity: ConnectionSession

    def send_packet(self, type: int, namespace: str, data: Any = None, id: int | None = None) -> None: ...

    def send_frames(self, text: str, buffers: list[bytes]) -> None: ...

    def restore(self, socket: Socket) -> Awaitable[bool]: ...

    def accept(self, socket: Socket) -> bool: ...

    def flushed(self) -> Awaitable[None]: ...

    def refuse(self, socket: Socket, code: str, message: str) -> None: ...

    def disconnect_socket(self, socket: Socket, reason: str) -> None: ...

    def end_session(self) -> None: ...


class SocketState(enum.Enum):
    """Where a socket is in its life; it only ever moves forward."""

    CONNECTING = "connecting"  # CONNECT received, not answered yet
    CONNECTED = "connected"
    GONE = "gone"


# The members as module constants: looking one up on the enum class costs
# ~60 ns on Python 3.11, and these are read on every frame and event.
_CONNECTING = SocketState.CONNECTING
_CONNECTED = SocketState.CONNECTED
_GONE = SocketState.GONE


def _check_event(event: Any) -> None:
    if not isinstance(event, str) or event in protocol.RESERVED_EVENTS:
        raise ValueError(f"{event!r} cannot be emitted: it is not a user event name")


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _run_on(loop: asyncio.AbstractEventLoop, action: Callable[[], Awaitable[None]]) -> Awaitable[None]:
    """
    Do ``action`` (which starts its work and returns what to await for the
    rest) now when called on ``loop``; from another thread, carry it to
    ``loop``, wait for all of it, and return :data:`~rain_ws.layer.DONE`.
    """
    if _on_loop(loop):
        return action()
    asyncio.run_coroutine_threadsafe(_complete(action), loop).result()
    return DONE


async def _complete(action: Callable[[], Awaitable[None]]) -> None:
    await action()


class Emitter:
    """Emits from a socket to rooms, or to its whole channel, leaving the socket out."""

    __slots__ = ("_rooms", "_socket")

    def __init__(self, socket: Socket, rooms: tuple[str, ...]) -> None:
        self._socket = socket
        self._rooms = rooms

    def to(self, room: str) -> Emitter:
        return Emitter(self._socket, (*self._rooms, check_target(room)))

    def emit(self, event: str, *args: Any) -> Awaitable[None]:
        _check_event(event)
        socket = self._socket
        return _run_on(socket._loop, lambda: self._emit(event, args))

    def _emit(self, event: str, args: tuple[Any, ...]) -> Awaitable[None]:
        socket = self._socket
        socket._room_index.emit(socket.channel, event, args, self._rooms, exclude=socket.id)
        return DONE


class Socket:
    """
    One client on one channel.

    ``id`` is the socket's Socket.IO id, ``channel`` the public channel name
    (the namespace), ``auth`` the payload of the client's CONNECT (``{}``
    when it sent none), ``scope`` the ASGI scope of the connection, ``user``
    the session's user as of the CONNECT (anonymous without one), and
    ``session`` the session's data: as of the CONNECT, or, on channels with
    ``use_session``, reloaded before each event and saved after it.

    ``recovered`` is True when the socket is one that went away and came
    back within ``RECOVERY_WINDOW``: it has its old id and rooms, its client
    got the events it missed, and ``handle`` runs again for it.
    """

    # Slots: a server holds many sockets, most of them idle.
    __slots__ = (
        "_acks",
        "_bound_session",
        "_channel",
        "_connection",
        "_data",
        "_disconnect_listeners",
        "_drained",
        "_listeners",
        "_log",
        "_loop",
        "_next_ack",
        "_pid",
        "_queue",
        "_queued_bytes",
        "_room_index",
        "_stats",
        "_worker",
        "auth",
        "channel",
        "id",
        "recovered",
        "rooms",
        "scope",
        "session",
        "state",
        "user",
    )

    def __init__(self, connection: Connection, channel: Channel, rooms: Rooms, auth: dict[str, Any] | None) -> None:
        self.id = rooms.new_socket_id()
        self.channel = channel.name
        self.auth = auth
        self.scope: dict[str, Any] = connection.scope
        self.user: Any = None
        self.session = SocketSession({}, "the socket is not connected yet")
        self.state = _CONNECTING
        self.recovered = False
        #: The rooms of this channel the socket is in (replaced, not changed
        #: in place, when it joins or leaves: most sockets join none).
        self.rooms: frozenset[str] = NO_ROOMS
        self._channel = channel
        self._connection = connection
        self._data: dict[str, Any] | None = None  # made when first used: most sockets keep none
        self._room_index = rooms
        self._loop = asyncio.get_running_loop()
        self._listeners: dict[Any, tuple[Listener, bool]] = {}
        self._disconnect_listeners: list[tuple[Listener, bool]] | None = None  # made when first needed
        # Run by rain_ws.dispatch: events waiting for their listener (made at
        # the first event), and the task running them.
        self._queue: deque[tuple[protocol.Packet, int]] | None = None
        self._queued_bytes = 0
        self._worker: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[None] | None = None  # a reader waiting for the queue to shrink
        self._bound_session: Any = None  # a sessions.BoundSession on use_session channels
        self._acks: dict[int, asyncio.Future[list[Any]]] | None = None  # made at the first call()
        self._next_ack = 0
        self._stats = metrics.channel(channel.name)
        # With RECOVERY_WINDOW set: what the client may not have read yet
        # (rain_ws.replay), and the private id it recovers the socket with.
        replay = rooms.replay
        self._log = replay.new_log() if replay is not None and replay.covers(channel.name) else None
        self._pid: str | None = None

    def __repr__(self) -> str:
        return f"<Socket {self.id} on {self.channel}>"

    @property
    def connected(self) -> bool:
        """Whether the socket is connected: from its CONNECT reply until it goes."""
        return self.state is _CONNECTED

    @property
    def data(self) -> dict[str, Any]:
        """
        A dict of your own per socket, as in Socket.IO: what ``authorize``
        or ``handle`` found out about the client (a token's claims, a
        nickname), for the socket's listeners. It lives as long as the socket.
        """
        if self._data is None:
            self._data = {}
        return self._data

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
                if self._disconnect_listeners is None:
                    self._disconnect_listeners = []
                self._disconnect_listeners.append(entry)
            else:
                self._listeners[event] = entry
            return function

        if listener is None:
            return register
        register(listener)
        return None

    def emit(self, event: str, *args: Any) -> Awaitable[None]:
        """Send ``event`` with ``args`` (JSON values; bytes anywhere) to the client."""
        _check_event(event)
        return _run_on(self._loop, lambda: self._emit(event, args))

    def _emit(self, event: str, args: tuple[Any, ...]) -> Awaitable[None]:
        if self.state is _CONNECTED:
            log = self._log
            if log is None:
                self._stats.events_out += 1
                self._connection.send_packet(protocol.EVENT, self.channel, [event, *args])
            else:
                entry = log.replay.encode(self.channel, [event, *args])
                self.send_frames(entry[TEXT], list(entry[BUFFERS]), entry)
        return DONE

    def call(self, event: str, *args: Any, timeout: float = 60.0) -> Coroutine[Any, Any, Any]:
        """
        Emit ``event`` and wait for the client's ack: ``await socket.call(...)``.

        Return the ack's argument (a tuple when the client acked several,
        ``None`` for none). Raise :class:`~rain_ws.AckTimeout` after
        ``timeout`` seconds and :class:`~rain_ws.SocketDisconnected` if the
        socket goes away first. It waits for the client, so it can only be
        awaited in async code; called from a ``def`` listener it raises
        ``RuntimeError`` at once.
        """
        if not _on_loop(self._loop):
            raise RuntimeError(
                f"socket.call({event!r}) waits for the client's ack and must be awaited on the server's "
                "event loop: make the listener `async def` and write `await socket.call(...)`"
            )
        _check_event(event)
        return self._call(event, args, timeout)

    async def _call(self, event: str, args: tuple[Any, ...], timeout: float) -> Any:
        if self.state is not _CONNECTED:
            raise SocketDisconnected(f"{self!r} is not connected")
        ack_id = self._next_ack
        self._next_ack += 1
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self._acks is None:
            self._acks = {}
        acks = self._acks
        acks[ack_id] = future
        self._stats.events_out += 1
        try:
            self._connection.send_packet(protocol.EVENT, self.channel, [event, *args], ack_id)
            try:
                result = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise AckTimeout(f"no ack for {event!r} from {self!r} within {timeout} s") from None
        finally:
            acks.pop(ack_id, None)
        if not result:
            return None
        return result[0] if len(result) == 1 else tuple(result)

    def join(self, room: str) -> Awaitable[None]:
        """
        Put the socket in ``room`` of its channel: emits to the room from this
        process reach it at once, and from any process once the returned
        awaitable is done (``await socket.join(room)``).
        """
        check_room(room)
        return _run_on(self._loop, lambda: self._join(room))

    def _join(self, room: str) -> Awaitable[None]:
        if self.state is not _CONNECTED:
            return DONE
        return self._room_index.join(self, room)

    def leave(self, room: str) -> Awaitable[None]:
        """Take the socket out of ``room``."""
        check_target(room)
        return _run_on(self._loop, lambda: self._leave(room))

    def _leave(self, room: str) -> Awaitable[None]:
        self._room_index.leave(self, room)
        return DONE

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

    def disconnect(self) -> Awaitable[None]:
        """Disconnect the client from this channel; its other channels stay connected."""
        return _run_on(self._loop, self._disconnect)

    def _disconnect(self) -> Awaitable[None]:
        if self.state is _CONNECTED:
            self._connection.disconnect_socket(self, "server namespace disconnect")
        return DONE

    # -- driven by the connection and the rooms -------------------------

    def send_frames(self, text: str, buffers: list[bytes], entry: Entry | None = None) -> None:
        """
        Send an already encoded event (a broadcast, encoded once for all);
        ``entry`` is its replay-log entry, when it has one.
        """
        if entry is not None and self._log is not None:
            # Logged while the socket is still being recovered, too: it is
            # sent with what it missed, once its CONNECT is answered.
            self._log.add(entry)
        if self.state is _CONNECTED:
            self._stats.events_out += 1
            self._connection.send_frames(text, buffers)

    def resolve_ack(self, packet: protocol.Packet) -> None:
        """The client acked a ``call()``."""
        future = self._acks.get(packet.id) if self._acks else None  # type: ignore[arg-type]
        if future is not None and not future.done():
            future.set_result(packet.data)

    def release_reader(self) -> None:
        """Let the connection's reader, waiting for this socket's queue to shrink, read again."""
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def close(self, reason: str) -> None:
        """
        End the socket: drop its queued events, cancel the listener that is
        running (a sync listener's thread runs to its end), fail pending
        ``call()``s, and start its ``disconnect`` listeners with ``reason``.
        """
        if self.state is _GONE:
            return
        was_connected = self.state is _CONNECTED
        self.state = _GONE
        if was_connected:
            self._stats.sockets -= 1
        # Also when it was not connected yet: a socket being recovered is in
        # its rooms before its CONNECT is answered.
        self._room_index.remove_socket(self)
        if self._queue is not None:
            self._queue.clear()
            self._queued_bytes = 0
        self.release_reader()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
        for future in (self._acks or {}).values():
            if not future.done():
                future.set_exception(SocketDisconnected(f"{self!r} disconnected: {reason}"))
        if was_connected and self._disconnect_listeners:
            # In a task of their own: a slow one must not hold up the
            # connection's other namespaces.
            asyncio.get_running_loop().create_task(self._run_disconnect_listeners(reason))

    async def _run_disconnect_listeners(self, reason: str) -> None:
        for function, is_async in self._disconnect_listeners or ():
            try:
                if is_async:
                    await function(reason)
                else:
                    await run_sync(function, reason)
            except Exception:
                logger.exception("disconnect listener %r of %r raised", function, self)
