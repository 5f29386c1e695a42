"""
Rooms, broadcasts and server-side emits, in one process and across processes.

Each server process keeps its own sockets by channel, room, id and session,
and delivers to them itself. Across processes everything goes through the
Channels channel layer, the way Socket.IO's Redis adapter works: the process
reads one channel of its own, and joins a layer group for each channel and
room while it has members there, so a room message costs one layer message
per process that has members, encoded once, not one per socket.

With no channel layer configured, or Channels' in-memory layer (which cannot
reach another process), delivery is local only and the layer is not touched.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from . import protocol
from .exceptions import RainError

if TYPE_CHECKING:
    from .consumer import SocketIOConsumer
    from .socket import Socket

__all__ = ["Hub", "abroadcast", "broadcast", "current_hub", "end_session_everywhere", "session_hash"]

logger = logging.getLogger("rain_ws")

#: Longest room name accepted.
MAX_ROOM_LENGTH = 200

#: Seconds a join waits for the channel layer before going on without it
#: (the join is then finished, or retried, in the background).
LAYER_WAIT = 1.0

#: Most layer messages a process holds while the channel layer is slow or
#: down; past it the oldest are dropped (and counted as undelivered).
MAX_OUTGOING = 10_000

#: A socket id is the process id (8 hex digits), "-", then 16 random
#: URL-safe characters: it names its process, so emits to it can find it.
_PROCESS_ID_BYTES = 4
_SOCKET_ID_RANDOM_BYTES = 12
_SOCKET_ID_LENGTH = 2 * _PROCESS_ID_BYTES + 1 + 16
_HEX = frozenset("0123456789abcdef")

_MESSAGE = "rain_ws.frames"
_END_SESSION = "rain_ws.end_session"
_ALL = "rain_ws.all"


def _digest(*parts: str) -> str:
    # Layer group names allow only ASCII letters, digits, "-", "_" and "."
    # and fewer than 100 characters; a digest fits any channel or room name,
    # keeps distinct names apart, and keeps names (and session keys) out of
    # Redis in clear.
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def channel_group(channel: str) -> str:
    return f"rain_ws.c.{_digest(channel)}"


def room_group(channel: str, room: str) -> str:
    return f"rain_ws.r.{_digest(channel, room)}"


def process_group(process_id: str) -> str:
    return f"rain_ws.p.{process_id}"


def session_hash(session_key: str) -> str:
    """How a session is named between processes: never the key itself."""
    return _digest("session", session_key)


def new_socket_id(process_id: str) -> str:
    """A new socket id of the process ``process_id``."""
    return f"{process_id}-{secrets.token_urlsafe(_SOCKET_ID_RANDOM_BYTES)}"


def is_socket_id(name: str) -> bool:
    """Whether ``name`` has the shape of a socket id (of any process)."""
    return (
        len(name) == _SOCKET_ID_LENGTH
        and name[2 * _PROCESS_ID_BYTES] == "-"
        and _HEX.issuperset(name[: 2 * _PROCESS_ID_BYTES])
    )


def process_of(socket_id: str) -> str:
    """The id of the process that holds the socket ``socket_id``."""
    return socket_id[: 2 * _PROCESS_ID_BYTES]


def check_target(room: Any) -> str:
    """A valid room name or socket id to emit to, or a RainError saying what is wrong with it."""
    if not isinstance(room, str):
        raise RainError(f"a room name must be a string, not {type(room).__name__}", "invalid_room")
    if not room:
        raise RainError("a room name must not be empty", "invalid_room")
    if len(room) > MAX_ROOM_LENGTH:
        raise RainError(f"a room name must be at most {MAX_ROOM_LENGTH} characters", "invalid_room")
    return room


def check_room(room: Any) -> str:
    """
    A room name a socket may join, or a RainError saying why not.

    A socket id is a socket's private address, not a room: a name shaped like
    one is refused whatever socket it names, so no socket can ever receive
    what is sent to another one by id.
    """
    check_target(room)
    if is_socket_id(room):
        raise RainError(
            "a room name must not look like a socket id (8 hex digits, '-', 16 characters): "
            "a socket's own address cannot be joined",
            "invalid_room",
        )
    return room


try:
    from redis.exceptions import TimeoutError as _RedisTimeout
except ImportError:  # channels-redis is not installed
    _READ_TIMEOUTS: tuple[type[BaseException], ...] = (TimeoutError,)
else:
    _READ_TIMEOUTS = (TimeoutError, _RedisTimeout)


def _usable_layer() -> Any:
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return None
    return layer


class Hub:
    """The sockets of one server process (one event loop), and its layer membership."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.process_id = secrets.token_hex(_PROCESS_ID_BYTES)
        self.layer = _usable_layer()
        self.sockets: dict[str, dict[str, Socket]] = {}
        self.rooms: dict[str, dict[str, set[Socket]]] = {}
        self.sessions: dict[str, set[SocketIOConsumer]] = {}
        self.groups: set[str] = set()
        self.undelivered = 0
        # Layer messages waiting to be sent, in order, by one sender task, so
        # no emit waits on a slow or stalled layer: (groups, message, done).
        self._outgoing: deque[tuple[list[str], dict[str, Any], asyncio.Future[None] | None]] = deque()
        self._sender: asyncio.Task[None] | None = None
        # Ids of recent messages sent to several groups, which reach a
        # process once per group it is in: deliver the first copy only.
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._channel_name: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        # Group joins under way (a second member waits for the first's), and
        # joins that failed while the layer was down, retried until they work.
        self._joining: dict[str, asyncio.Future[None]] = {}
        self._unjoined: set[str] = set()
        self._retrying: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- membership ----------------------------------------------------------

    def new_socket_id(self) -> str:
        """A socket id that names this process, so emits to it can find it."""
        return new_socket_id(self.process_id)

    async def add_socket(self, socket: Socket) -> None:
        self.sockets.setdefault(socket.channel, {})[socket.id] = socket
        await self._join_group(channel_group(socket.channel))

    def remove_socket(self, socket: Socket) -> None:
        """Forget a socket that is gone, with every room it was in."""
        for room in list(socket.rooms):
            if self._leave_locally(socket, room):
                self._leave_group_soon(room_group(socket.channel, room))
        local = self.sockets.get(socket.channel)
        if local is not None and local.pop(socket.id, None) is not None and not local:
            del self.sockets[socket.channel]
            self._leave_group_soon(channel_group(socket.channel))

    async def join(self, socket: Socket, room: str) -> None:
        if room in socket.rooms:
            return
        socket.rooms = socket.rooms | {room}
        self.rooms.setdefault(socket.channel, {}).setdefault(room, set()).add(socket)
        await self._join_group(room_group(socket.channel, room))

    def leave(self, socket: Socket, room: str) -> None:
        if room in socket.rooms and self._leave_locally(socket, room):
            self._leave_group_soon(room_group(socket.channel, room))

    def _leave_locally(self, socket: Socket, room: str) -> bool:
        """Take a socket out of a room; True when the room became empty here."""
        socket.rooms = socket.rooms - {room}
        rooms = self.rooms.get(socket.channel)
        members = rooms.get(room) if rooms is not None else None
        if members is None:
            return False
        members.discard(socket)
        if members:
            return False
        del rooms[room]  # type: ignore[union-attr]
        if not rooms:
            del self.rooms[socket.channel]
        return True

    def add_session(self, key_hash: str, connection: SocketIOConsumer) -> None:
        self.sessions.setdefault(key_hash, set()).add(connection)

    def remove_session(self, key_hash: str, connection: SocketIOConsumer) -> None:
        connections = self.sessions.get(key_hash)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self.sessions[key_hash]

    def room_count(self) -> int:
        """Room memberships held in this process (one per socket per room)."""
        return sum(len(members) for rooms in self.rooms.values() for members in rooms.values())

    # -- delivery ------------------------------------------------------------

    async def emit(
        self,
        channel: str,
        event: str,
        args: Iterable[Any],
        rooms: Iterable[str] = (),
        exclude: str | None = None,
        wait: bool = False,
    ) -> None:
        """
        Emit to every socket of ``channel``, or of ``rooms`` (room names or
        socket ids) when given, in every process; ``exclude`` is a socket id
        left out (the sender).

        This process's sockets get it at once. Other processes get it through
        the channel layer, in the background, so a slow or stalled layer never
        delays local delivery or the sender's ack; ``wait`` waits until the
        layer has taken it (or failed to), for callers whose event loop may
        end right after (a management command).
        """
        text, buffers = protocol.encode_packet(protocol.EVENT, channel, [event, *args])
        rooms = list(rooms)
        self.deliver(channel, text, buffers, rooms, exclude)
        if self.layer is None:
            return
        groups = self._groups_for(channel, rooms)
        message = {
            "type": _MESSAGE,
            "origin": self.process_id,
            "id": secrets.token_hex(8) if len(groups) > 1 else None,
            "channel": channel,
            "rooms": rooms,
            "exclude": exclude,
            "text": text,
            "buffers": buffers,
        }
        await self._publish(groups, message, wait)

    @staticmethod
    def _groups_for(channel: str, rooms: list[str]) -> list[str]:
        if not rooms:
            return [channel_group(channel)]
        groups = []
        for room in rooms:
            # A socket id reaches only the process holding that socket, and
            # a room only its group: the two never share a name.
            groups.append(process_group(process_of(room)) if is_socket_id(room) else room_group(channel, room))
        return list(dict.fromkeys(groups))

    def deliver(
        self, channel: str, text: str, buffers: list[bytes], rooms: list[str], exclude: str | None
    ) -> None:
        """
        Send encoded frames to this process's sockets of ``channel`` (or of
        ``rooms``: room names and socket ids). One receiver that fails (it
        went away meanwhile) never stops the others from getting it.
        """
        local = self.sockets.get(channel)
        if not local:
            return
        if rooms:
            channel_rooms = self.rooms.get(channel, {})
            targets: set[Socket] = set()
            for room in rooms:
                if is_socket_id(room):
                    socket = local.get(room)
                    if socket is not None:
                        targets.add(socket)
                else:
                    targets.update(channel_rooms.get(room, ()))
        else:
            targets = set(local.values())
        for socket in targets:
            if socket.id != exclude:
                try:
                    socket.send_frames(text, buffers)
                except Exception as error:
                    logger.warning("%r: broadcast not sent: %s", socket, error)

    async def end_session(self, key_hash: str, wait: bool = False) -> None:
        """Tell every connection of a session, in every process, that it ended."""
        self._end_session_locally(key_hash)
        if self.layer is not None:
            message = {"type": _END_SESSION, "origin": self.process_id, "session": key_hash}
            await self._publish([_ALL], message, wait)

    def _end_session_locally(self, key_hash: str) -> None:
        for connection in list(self.sessions.pop(key_hash, ())):
            connection.end_session()

    # -- the channel layer -----------------------------------------------------

    async def _join_group(self, group: str) -> None:
        """
        Have this process's channel in ``group``; return once the layer has
        it, has failed to (it is then retried in the background), or after
        ``LAYER_WAIT`` seconds of a layer that does not answer (the join goes
        on in the background): a stalled layer delays a join by at most that.
        """
        if group not in self.groups:
            self.groups.add(group)
            if self.layer is None:
                return
            self._joining[group] = self.loop.create_task(self._add_group(group))
        pending = self._joining.get(group)
        if pending is not None:
            await asyncio.wait((pending,), timeout=LAYER_WAIT)

    async def _add_group(self, group: str) -> None:
        try:
            await self._start()
            await self.layer.group_add(group, self._channel_name)
        except Exception as error:
            logger.error("channel layer unavailable, %s not joined yet: %s", group, error)
            self._unjoined.add(group)
            if self._retrying is None:
                self._retrying = self.loop.create_task(self._retry_joins())
        finally:
            del self._joining[group]

    async def _retry_joins(self) -> None:
        delay = 0.5
        try:
            while self._unjoined:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                for group in list(self._unjoined):
                    if group not in self.groups:
                        self._unjoined.discard(group)
                        continue
                    try:
                        await self.layer.group_add(group, self._channel_name)
                    except Exception:
                        break
                    self._unjoined.discard(group)
        finally:
            self._retrying = None

    async def _leave_group(self, group: str) -> None:
        self.groups.discard(group)
        self._unjoined.discard(group)
        if self.layer is None or self._channel_name is None:
            return
        try:
            await self.layer.group_discard(group, self._channel_name)
        except Exception as error:
            logger.warning("channel layer unavailable, %s not left: %s", group, error)

    def _leave_group_soon(self, group: str) -> None:
        if self.layer is None:
            self.groups.discard(group)
            return
        self.background(self._leave_group(group))

    def background(self, coroutine: Any) -> None:
        """Run ``coroutine`` in a task that is kept until it ends."""
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, groups: list[str], message: dict[str, Any], wait: bool) -> None:
        """
        Queue ``message`` for ``groups``; the sender task sends queued
        messages in order. Past ``MAX_OUTGOING`` queued (a layer that stalls),
        the oldest is dropped, so memory stays bounded.
        """
        done = self.loop.create_future() if wait else None
        outgoing = self._outgoing
        if len(outgoing) >= MAX_OUTGOING:
            _, _, dropped = outgoing.popleft()
            if dropped is not None and not dropped.done():
                dropped.set_result(None)
            self._undelivered(f"over {MAX_OUTGOING} messages waiting for the layer")
        outgoing.append((groups, message, done))
        if self._sender is None:
            self._sender = self.loop.create_task(self._send_outgoing())
        if done is not None:
            await done

    async def _send_outgoing(self) -> None:
        outgoing = self._outgoing
        try:
            while outgoing:
                groups, message, done = outgoing.popleft()
                try:
                    for group in groups:
                        await self.layer.group_send(group, message)
                except Exception as error:
                    self._undelivered(str(error))
                finally:
                    if done is not None and not done.done():
                        done.set_result(None)
        finally:
            self._sender = None

    def _undelivered(self, reason: str) -> None:
        self.undelivered += 1
        logger.error(
            "channel layer unavailable: an emit did not reach other processes (%d so far): %s",
            self.undelivered,
            reason,
        )

    async def _start(self) -> None:
        """Make this process's layer channel and start reading it, once."""
        if self._ready is None:
            self._ready = self.loop.create_future()
            self._reader = self.loop.create_task(self._read())
            expiry = getattr(self.layer, "group_expiry", None)
            if expiry:
                self._keepalive = self.loop.create_task(self._refresh_groups(expiry / 2))
        await asyncio.shield(self._ready)

    async def _refresh_groups(self, interval: float) -> None:
        """Join every group again now and then, so memberships outlive the layer's group expiry."""
        while True:
            await asyncio.sleep(interval)
            if self._channel_name is None:
                continue
            try:
                for group in list(self.groups):
                    await self.layer.group_add(group, self._channel_name)
            except Exception as error:
                logger.warning("channel layer unavailable, group memberships not refreshed: %s", error)

    async def _read(self) -> None:
        layer = self.layer
        delay = 0.5
        failing = False
        while True:
            try:
                if self._channel_name is None:
                    self._channel_name = await layer.new_channel("rain_ws")
                    base = {_ALL, process_group(self.process_id)}
                    self.groups |= base
                    for group in base:
                        await layer.group_add(group, self._channel_name)
                    if not self._ready.done():  # type: ignore[union-attr]
                        self._ready.set_result(None)  # type: ignore[union-attr]
                if failing:
                    # The layer is back, maybe empty (a Redis restart): join
                    # every group again before reading on.
                    for group in list(self.groups):
                        await layer.group_add(group, self._channel_name)
                    logger.warning("channel layer available again; %d group(s) rejoined", len(self.groups))
                    failing = False
                    delay = 0.5
                message = await layer.receive(self._channel_name)
            except asyncio.CancelledError:
                raise
            except _READ_TIMEOUTS:
                # A blocking read that outlived the client's socket timeout:
                # nothing arrived, and the layer is fine.
                continue
            except Exception as error:
                if not failing:
                    logger.error("channel layer unavailable, retrying: %s", error)
                failing = True
                if self._ready is not None and not self._ready.done():
                    # Do not hold up joins while the layer is down.
                    self._ready.set_result(None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                self._on_message(message)
            except Exception:
                logger.exception("could not deliver a channel layer message")

    def _on_message(self, message: dict[str, Any]) -> None:
        if message.get("origin") == self.process_id:
            return  # delivered locally when it was sent
        kind = message.get("type")
        if kind == _MESSAGE:
            message_id = message.get("id")
            if message_id is not None:
                if message_id in self._seen:
                    return
                self._seen[message_id] = None
                if len(self._seen) > 1024:
                    self._seen.popitem(last=False)
            self.deliver(
                message["channel"], message["text"], list(message["buffers"]), message["rooms"], message["exclude"]
            )
        elif kind == _END_SESSION:
            self._end_session_locally(message["session"])


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def current_hub() -> Hub:
    """The hub of the running event loop, made on first use."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub


async def abroadcast(channel: str, event: str, *args: Any, room: str | None = None) -> None:
    """
    Emit ``event`` to every socket of ``channel`` (its public name, e.g.
    ``"/chat/1.0/chat"``), or of one ``room`` of it, in every process.

    Call it from async code: an async view, a consumer, a task.
    """
    await current_hub().emit(channel, event, args, [check_target(room)] if room is not None else (), wait=True)


def broadcast(channel: str, event: str, *args: Any, room: str | None = None) -> None:
    """:func:`abroadcast` for sync code: a view, a signal handler, a management command, a thread."""
    _run_sync(abroadcast, channel, event, *args, room=room)


def end_session_everywhere(session_key: str) -> None:
    """
    Disconnect every socket of a session, in every process (called from the
    logout receiver and :class:`~rain_ws.middleware.SessionEndMiddleware`).
    """
    key_hash = session_hash(session_key)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _run_sync(_end_session, key_hash)
    else:
        hub = current_hub()
        hub.background(hub.end_session(key_hash))


async def _end_session(key_hash: str) -> None:
    await current_hub().end_session(key_hash, wait=True)


def _run_sync(function: Any, *args: Any, **kwargs: Any) -> None:
    """
    Run an async function from sync code, on the server's event loop when
    this process has one (so the sockets it holds are reached directly),
    else in an event loop of its own (a management command, a worker).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        for loop in list(_hubs):
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(function(*args, **kwargs), loop).result()
                return
    # No server loop here, or called on the loop's own thread, which asgiref
    # refuses with a message saying to await the async function instead.
    async_to_sync(function)(*args, **kwargs)
