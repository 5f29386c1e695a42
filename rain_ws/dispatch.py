"""
Running a socket's code: its CONNECT, then its events, one at a time.

Each socket has a queue of events and a task that works through it, made
only while there is work, so a slow listener holds up its own socket and
nothing else. The CONNECT comes first: the session is bound, ``authorize``
runs, the socket is recovered when its client asks and it can be, the
CONNECT is answered (followed by what a recovered client missed), then the
channel's handlers run. Each event then runs its listener, between the
session's load and save on ``use_session`` channels, and is acked with the
listener's result or error.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from time import perf_counter
from typing import Any

from django.conf import settings

from . import protocol
from .aio import run_sync
from .exceptions import ConnectRefused, RainError
from .replay import BUFFERS, TEXT
from .sessions import SESSION_EXPIRED, SESSION_UNAVAILABLE, SessionExpired, SessionUnavailable, bind_session
from .socket import Ack, Socket, SocketState

__all__ = ["PAUSE_AT", "QueueFull", "drained", "receive_event", "start_socket"]

logger = logging.getLogger("rain_ws")

# Module constants: looking a member up on the enum class costs ~60 ns on Python 3.11.
_GONE = SocketState.GONE
_CONNECTED = SocketState.CONNECTED

#: Seconds of a socket's backlog handled before the other connections' work
#: gets a turn.
TURN = 0.002

#: Events queued on one socket at which a transport that can make the client
#: wait stops reading (see :func:`drained`); it reads again at half.
PAUSE_AT = 64


class QueueFull(Exception):
    """A socket's queue of unhandled events is over its bound."""


class _Starting:
    """
    ``socket._worker`` while a worker's first step runs inside its creation,
    before the task can be stored: with an eager task factory on the loop
    (``asyncio.eager_task_factory``, Python 3.12 and later) ``create_task``
    runs the coroutine up to its first wait. Events that arrive meanwhile are
    queued for it, not given a second worker, and the socket counts as busy.
    ``Socket.close()`` during that step comes from the worker itself, which
    it does not cancel (as it does not cancel a running worker from within).
    """

    __slots__ = ()

    def cancel(self, msg: Any = None) -> bool:
        return False


_STARTING: Any = _Starting()


def _start(socket: Socket, connecting: bool) -> None:
    """Start the socket's worker; keep it in ``socket._worker`` while it has work left."""
    socket._worker = _STARTING
    task = asyncio.get_running_loop().create_task(_work(socket, connecting))
    if socket._worker is _STARTING:
        # A worker that ended in its first step (started eagerly) is not kept:
        # its finally saw the placeholder, not itself, and the socket's next
        # event must start another. Closed in that step, the socket has none.
        socket._worker = None if task.done() else task


def start_socket(socket: Socket) -> None:
    """Authorize, answer the CONNECT and run the handlers, ahead of any event."""
    _start(socket, True)


def receive_event(socket: Socket, packet: protocol.Packet, size: int) -> int:
    """
    Queue an incoming event of ``size`` bytes; it is handled after those
    before it. Return how many events are now queued, or raise
    :class:`QueueFull` when the queue is over ``MAX_QUEUED_EVENTS`` or
    ``MAX_QUEUED_BYTES``: a client that sends faster than its listeners
    handle would otherwise grow the server's memory without bound.
    """
    queue = socket._queue
    if queue is None:
        queue = socket._queue = deque()
    limits = socket._connection.settings
    if len(queue) >= limits.MAX_QUEUED_EVENTS:
        raise QueueFull(f"over MAX_QUEUED_EVENTS ({limits.MAX_QUEUED_EVENTS}) events queued on {socket.channel}")
    if socket._queued_bytes + size > limits.MAX_QUEUED_BYTES:
        raise QueueFull(f"over MAX_QUEUED_BYTES ({limits.MAX_QUEUED_BYTES}) bytes of events queued on {socket.channel}")
    socket._queued_bytes += size
    queue.append((packet, size))
    if socket._worker is None:
        _start(socket, False)
    return len(queue)


async def drained(socket: Socket) -> None:
    """Return once the socket's queue is down to half of :data:`PAUSE_AT` (or the socket is gone)."""
    queue = socket._queue
    if queue is None or len(queue) <= PAUSE_AT // 2 or socket.state is _GONE:
        return
    socket._drained = asyncio.get_running_loop().create_future()
    await socket._drained


async def _work(socket: Socket, connecting: bool = False) -> None:
    try:
        if connecting and not await _connect(socket):
            return
        queue = socket._queue
        turn_ends = perf_counter() + TURN
        while queue and socket.state is not _GONE:
            packet, size = queue.popleft()
            socket._queued_bytes -= size
            if socket._drained is not None and len(queue) <= PAUSE_AT // 2:
                socket.release_reader()
            await _handle(socket, packet)
            if queue and perf_counter() > turn_ends:
                # Let the other connections' work run: a listener that never
                # awaits must not hold the event loop for a whole backlog.
                await asyncio.sleep(0)
                turn_ends = perf_counter() + TURN
    finally:
        if asyncio.current_task() is socket._worker:
            socket._worker = None


async def _connect(socket: Socket) -> bool:
    """The CONNECT: session, ``authorize``, the reply, then the handlers. False if refused."""
    connection = socket._connection
    channel = socket._channel
    try:
        binding = await bind_session(connection.identity, connection, channel)
        socket.user, socket.session, socket._bound_session = binding
        for handler in channel.handlers:
            if handler.authorize is None:
                continue
            try:
                if handler.authorize_is_async:
                    allowed = await handler.authorize(socket)
                else:
                    allowed = await run_sync(handler.authorize, socket)
            except RainError as error:
                raise ConnectRefused(error.code, error.message) from None
            except Exception:
                logger.exception("authorize() of %s raised for %r", handler.module, socket)
                allowed = False
            if not allowed:
                raise ConnectRefused("not_authorized", "not authorized")
    except ConnectRefused as refused:
        connection.refuse(socket, refused.code, refused.message)
        return False
    recovered = await connection.restore(socket)
    if not connection.accept(socket):
        socket.close("refused")
        return False
    socket.state = _CONNECTED
    socket._stats.sockets += 1
    if recovered:
        # What the client missed, before anything else is sent to it.
        socket.recovered = True
        for entry in socket._log.entries:  # type: ignore[union-attr]
            socket._stats.events_out += 1
            connection.send_frames(entry[TEXT], list(entry[BUFFERS]))
    else:
        await socket._room_index.add_socket(socket)
    await connection.flushed()
    for handler in channel.handlers:
        try:
            if handler.is_async:
                await handler.function(socket)
            else:
                await run_sync(handler.function, socket)
        except Exception:
            socket._stats.errors += 1
            logger.exception("websocket handler %s raised for %r", handler.name, socket)
    bound = socket._bound_session
    if bound is not None and socket.session.modified:
        if await bound.save(socket.session) is SESSION_EXPIRED:
            connection.end_session()
            return False
    return True


async def _handle(socket: Socket, packet: protocol.Packet) -> None:
    event, *args = packet.data
    stats = socket._stats
    stats.events_in += 1
    entry = socket._listeners.get(event)
    ack_id = packet.id
    if entry is None:
        logger.info("%r: no listener for event %r", socket, event)
        if ack_id is not None:
            _ack(socket, ack_id, [{"message": f"no listener for {event!r}", "code": "unknown_event"}, None])
        return
    bound = socket._bound_session
    if bound is not None:
        try:
            socket.session = await bound.load()
        except SessionExpired:
            _session_ended(socket, ack_id)
            return
        except SessionUnavailable:
            if ack_id is not None:
                _ack(socket, ack_id, [SESSION_UNAVAILABLE, None])
            return
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
            logger.info("%r: listener for %r refused: %s", socket, event, error.message)
            return
        answer: list[Any] = [error.as_ack(), None]
    except Exception as error:
        stats.observe(perf_counter() - started)
        stats.errors += 1
        logger.exception("%r: listener for %r raised", socket, event)
        if ack_id is None:
            return
        message = f"{type(error).__name__}: {error}" if settings.DEBUG else "internal error"
        answer = [{"message": message, "code": "internal_error"}, None]
    else:
        stats.observe(perf_counter() - started)
        answer = result.args if type(result) is Ack else [None, result]
        if bound is not None and (socket.session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
            error = await bound.save(socket.session)
            if error is SESSION_EXPIRED:
                _session_ended(socket, ack_id)
                return
            if error is not None:
                answer = [error, None]
        if ack_id is None:
            return
    _ack(socket, ack_id, answer)


def _session_ended(socket: Socket, ack_id: int | None) -> None:
    if ack_id is not None:
        _ack(socket, ack_id, [SESSION_EXPIRED, None])
    socket._connection.end_session()


def _ack(socket: Socket, ack_id: int, answer: list[Any]) -> None:
    if socket.state is not _CONNECTED:
        return
    socket._stats.events_out += 1
    connection = socket._connection
    try:
        connection.send_packet(protocol.ACK, socket.channel, answer, ack_id)
    except (TypeError, ValueError) as error:
        logger.error("%r: cannot encode the ack: %s", socket, error)
        connection.send_packet(
            protocol.ACK,
            socket.channel,
            [{"message": "the result cannot be sent: " + str(error), "code": "unserializable"}, None],
            ack_id,
        )
