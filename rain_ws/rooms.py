"""
The rooms of one server process: its sockets by channel, room and id, and
delivery to them.

Each process keeps its own sockets and delivers to them itself; what must
reach other processes goes through the channel-layer bridge
(:mod:`rain_ws.layer`) once per process, encoded once, the way Socket.IO's
Redis adapter works. Room names and socket ids never share a name: a room
shaped like a socket id cannot be joined, and a socket id reaches only its
socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, Protocol

from . import protocol
from .exceptions import RainError
from .layer import DONE, LayerBridge, group_name, is_socket_id, new_socket_id, process_of
from .replay import Entry, Replay

__all__ = ["MAX_ROOM_LENGTH", "NO_ROOMS", "Member", "Rooms", "check_room", "check_target"]

logger = logging.getLogger("rain_ws")

#: Longest room name accepted.
MAX_ROOM_LENGTH = 200

#: The rooms of a socket in none: one shared empty set (an empty frozenset is
#: not a singleton, and most sockets join no room).
NO_ROOMS: frozenset[str] = frozenset()

#: The layer message that carries an encoded event to other processes.
FRAMES = "rain_ws.frames"


class Member(Protocol):
    """What rooms need from a socket."""

    id: str
    channel: str
    rooms: frozenset[str]

    def send_frames(self, text: str, buffers: list[bytes], entry: Entry | None = None) -> None: ...


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


def channel_group(channel: str) -> str:
    return group_name("c", channel)


def room_group(channel: str, room: str) -> str:
    return group_name("r", channel, room)


def moved_socket_group(socket_id: str) -> str:
    """
    The group of a socket that a recovery moved from the process its id
    names to another one: emits to its id reach it there through this group.
    """
    return group_name("s", socket_id)


class Rooms:
    """The sockets of one server process (one event loop), by channel, room and id."""

    def __init__(self, bridge: LayerBridge, replay: Replay | None = None) -> None:
        self.bridge = bridge
        #: With ``RECOVERY_WINDOW`` set: offsets and replay-log entries.
        self.replay = replay
        self.sockets: dict[str, dict[str, Member]] = {}
        self.rooms: dict[str, dict[str, set[Member]]] = {}
        bridge.on(FRAMES, self._on_frames)

    # -- membership ----------------------------------------------------------

    def new_socket_id(self) -> str:
        """A socket id that names this process, so emits to it can find it."""
        return new_socket_id(self.bridge.process_id)

    def add_socket(self, socket: Member) -> Awaitable[None]:
        """Count a connected socket in; await the result to know other processes reach it."""
        self.sockets.setdefault(socket.channel, {})[socket.id] = socket
        joined = self.bridge.join(channel_group(socket.channel))
        if self._moved_here(socket):
            return _Both(joined, self.bridge.join(moved_socket_group(socket.id)))
        return joined

    def remove_socket(self, socket: Member) -> None:
        """Forget a socket that is gone, with every room it was in."""
        for room in list(socket.rooms):
            self.leave(socket, room)
        local = self.sockets.get(socket.channel)
        if local is None or local.get(socket.id) is not socket:
            return
        del local[socket.id]
        if self._moved_here(socket):
            self.bridge.leave(moved_socket_group(socket.id))
        if not local:
            del self.sockets[socket.channel]
            self.bridge.leave(channel_group(socket.channel))

    def replace(self, old: Member, new: Member) -> None:
        """
        Put ``new`` where ``old`` is, with its id and rooms (a socket that
        went away and the one recovering it), without leaving any group.
        """
        new.id = old.id
        new.rooms = old.rooms
        old.rooms = NO_ROOMS
        self.sockets[old.channel][old.id] = new
        rooms = self.rooms.get(old.channel, {})
        for room in new.rooms:
            members = rooms[room]
            members.discard(old)
            members.add(new)

    def _moved_here(self, socket: Member) -> bool:
        return self.replay is not None and process_of(socket.id) != self.bridge.process_id

    def join(self, socket: Member, room: str) -> Awaitable[None]:
        """
        Put a socket in a room, here at once; await the result to know that
        other processes reach it there too.
        """
        if room in socket.rooms:
            return DONE
        socket.rooms = socket.rooms | {room}
        self.rooms.setdefault(socket.channel, {}).setdefault(room, set()).add(socket)
        return self.bridge.join(room_group(socket.channel, room))

    def leave(self, socket: Member, room: str) -> None:
        if room not in socket.rooms:
            return
        socket.rooms = socket.rooms - {room}
        rooms = self.rooms.get(socket.channel)
        members = rooms.get(room) if rooms is not None else None
        if members is None:
            return
        members.discard(socket)
        if members:
            return
        del rooms[room]  # type: ignore[union-attr]
        if not rooms:
            del self.rooms[socket.channel]
        self.bridge.leave(room_group(socket.channel, room))

    def room_count(self) -> int:
        """Room memberships held in this process (one per socket per room)."""
        return sum(len(members) for rooms in self.rooms.values() for members in rooms.values())

    # -- delivery ------------------------------------------------------------

    def emit(
        self,
        channel: str,
        event: str,
        args: Iterable[Any],
        rooms: Iterable[str] = (),
        exclude: str | None = None,
        track: bool = False,
    ) -> asyncio.Future[None] | None:
        """
        Emit to every socket of ``channel``, or of ``rooms`` (room names or
        socket ids) when given, in every process; ``exclude`` is a socket id
        left out (the sender).

        This process's sockets get it at once. Other processes get it through
        the channel layer, in the background, so a slow or stalled layer never
        delays local delivery or the sender's ack. With ``track``, return a
        future done once the layer has taken it (or failed to), for callers
        whose event loop may end right after (a management command).
        """
        replay = self.replay
        entry: Entry | None = None
        if replay is not None and replay.covers(channel):
            entry = replay.encode(channel, [event, *args])
            _, offset, text, frames, _ = entry
            buffers = list(frames)
        else:
            offset = None
            text, buffers = protocol.encode_packet(protocol.EVENT, channel, [event, *args])
        rooms = list(rooms)
        self.deliver(channel, text, buffers, rooms, exclude, entry)
        if not self.bridge.enabled:
            return None
        if rooms:
            # A socket id reaches only the process holding that socket (and,
            # when a recovery moved it, its own group), a room only its group.
            targets: list[str] = []
            local = self.sockets.get(channel, {})
            for room in rooms:
                if not is_socket_id(room):
                    targets.append(room_group(channel, room))
                elif room not in local:
                    targets.append(self.bridge.for_socket(room))
                    if replay is not None:
                        targets.append(moved_socket_group(room))
            groups = list(dict.fromkeys(targets))
            if not groups:
                return None
        else:
            groups = [channel_group(channel)]
        message = {
            "type": FRAMES,
            "channel": channel,
            "rooms": rooms,
            "exclude": exclude,
            "text": text,
            "buffers": buffers,
            "offset": offset,
        }
        return self.bridge.publish(groups, message, track, len(text) + sum(map(len, buffers)))

    def deliver(
        self,
        channel: str,
        text: str,
        buffers: list[bytes],
        rooms: list[str],
        exclude: str | None,
        entry: Entry | None = None,
    ) -> None:
        """
        Send encoded frames to this process's sockets of ``channel`` (or of
        ``rooms``: room names and socket ids), and log ``entry`` for those
        that keep a replay log. One receiver that fails (it went away
        meanwhile) never stops the others from getting it.
        """
        local = self.sockets.get(channel)
        if not local:
            return
        if rooms:
            channel_rooms = self.rooms.get(channel, {})
            targets: set[Member] = set()
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
                    socket.send_frames(text, buffers, entry)
                except Exception as error:
                    logger.warning("%r: broadcast not sent: %s", socket, error)

    def _on_frames(self, message: dict[str, Any]) -> None:
        text, buffers = message["text"], list(message["buffers"])
        offset = message.get("offset")
        entry = None
        if offset is not None and self.replay is not None:
            entry = self.replay.entry(offset, text, buffers)
        self.deliver(message["channel"], text, buffers, message["rooms"], message["exclude"], entry)


class _Both:
    """Awaiting it awaits two awaitables, in turn."""

    __slots__ = ("first", "second")

    def __init__(self, first: Awaitable[None], second: Awaitable[None]) -> None:
        self.first = first
        self.second = second

    def __await__(self) -> Any:
        yield from self.first.__await__()
        yield from self.second.__await__()
