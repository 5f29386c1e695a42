"""
Connection state recovery: a socket that went away comes back, within
``RECOVERY_WINDOW``, with its id, its rooms, its ``data`` and every event it
missed, in order and once.

A socket that goes away without meaning to (its transport closed, its pings
went unanswered, the idle reaper or a drain closed it) leaves a
:class:`Detached` stand-in in its place in the rooms of its process. The
stand-in keeps the socket's rooms and logs what is sent to them, and to its
id, for the window. The client, whose CONNECT reply carried a private id
(``pid``: the socket id, signed with ``SECRET_KEY``, the same for the
socket's whole life, as the official client expects), sends that id and the
offset of the last event it got (:mod:`rain_ws.replay`) in its next CONNECT.
A pid the server did not make is refused where it arrives, at the cost of a
hash: no made-up pid makes a process ask the others for a socket.

- on the process that holds the stand-in, the new socket takes its place at
  once, and is sent the log after the offset;
- on another process, it asks the holder through the channel layer for the
  socket's rooms (*claim*), joins them, then asks for the log (*take*); the
  holder hands it over and forgets the stand-in. Events that reached both
  (sent between the join and the hand-over) carry the same offset and are
  sent once. The holder is found where emits to the socket's id go: the
  process its id names, or, once a recovery moved it, the socket's group.
  A socket leaves the process its id names only when that process hands it
  over, so that process answers at once for one of its sockets it neither
  holds nor handed over: it is gone (a client back after the window does
  not wait ``HOLDER_WAIT`` for an answer that cannot come).

A recovery needs the same Django session as the socket had. It fails, and
the client gets a fresh socket, when the window is over, the session
differs, the holder does not answer (it stopped: its stand-ins went with
it), or the log cannot give everything after the offset (it was over its
bounds); the log says which.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from django.utils.crypto import constant_time_compare, salted_hmac

from .layer import is_socket_id, process_group, process_of
from .metrics import metrics
from .replay import BUFFERS, OFFSET, TEXT, ReplayLog, valid_offset
from .rooms import NO_ROOMS, Rooms, moved_socket_group

if TYPE_CHECKING:
    from .socket import Socket

__all__ = ["FINAL_REASONS", "HOLDER_WAIT", "Detached", "Recovery"]

logger = logging.getLogger("rain_ws")

#: Reasons a socket goes away for good: its client or server meant it to.
FINAL_REASONS = frozenset(
    {"client namespace disconnect", "server namespace disconnect", "session expired", "refused"}
)

#: Seconds a recovery waits for the process holding the socket to answer.
HOLDER_WAIT = 2.0

#: The layer messages between the recovering process and the holder.
RECOVER = "rain_ws.recover"
RECOVER_ANSWER = "rain_ws.recover.answer"

#: Longest ``pid`` a client may send: ours are 25 characters, ".", and 24.
MAX_PID_LENGTH = 64

#: Most ids of its own sockets a process remembers handing over to another
#: process. Past it, it forgets them all and asks the layer for every
#: socket of its own it does not hold, as it must for other processes' ones.
MAX_HANDED = 100_000


class Detached:
    """A socket that went away, kept in its rooms for ``RECOVERY_WINDOW``: it logs what it misses."""

    __slots__ = ("_log", "_pid", "channel", "data", "expiry", "id", "key_hash", "rooms")

    def __init__(self, socket: Socket, key_hash: str | None) -> None:
        self.id = socket.id
        self.channel = socket.channel
        self.rooms: frozenset[str] = NO_ROOMS
        self.data = socket._data
        self.key_hash = key_hash
        self._log: ReplayLog = socket._log  # type: ignore[assignment]
        self._pid: str = socket._pid  # type: ignore[assignment]
        self.expiry: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Detached socket {self.id} on {self.channel}>"

    def send_frames(self, text: str, buffers: list[bytes], entry: Any = None) -> None:
        if entry is not None:
            self._log.add(entry)


class Recovery:
    """One process's recoverable sockets: their private ids, stand-ins and hand-overs."""

    def __init__(self, rooms: Rooms, window: float) -> None:
        self.rooms = rooms
        self.bridge = rooms.bridge
        self.replay = rooms.replay
        self.window = window
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # A socket starts in the process its id names, and leaves it only
        # when that process hands it over: ids of this process's sockets
        # handed over (and not back), so that a socket of this process that
        # is not here and was never handed over is known to be nowhere,
        # without waiting HOLDER_WAIT for an answer that cannot come.
        self._handed: set[str] = set()
        self._handed_known = True
        self.bridge.on(RECOVER, self._on_request)
        self.bridge.on(RECOVER_ANSWER, self._on_answer)

    # -- going away ----------------------------------------------------------

    def detach(self, socket: Socket, key_hash: str | None) -> None:
        """Leave a stand-in for a connected socket that is going away without meaning to."""
        stand_in = Detached(socket, key_hash)
        self.rooms.replace(socket, stand_in)
        stand_in.expiry = asyncio.get_running_loop().call_later(self.window, self._discard, stand_in)

    def _discard(self, stand_in: Detached) -> None:
        if stand_in.expiry is not None:
            stand_in.expiry.cancel()
        self.rooms.remove_socket(stand_in)

    # -- coming back ---------------------------------------------------------

    async def restore(self, socket: Socket, key_hash: str | None) -> bool:
        """
        Recover the socket the CONNECT's ``pid`` names, if it can be: the
        socket then has its id, rooms, ``data`` and ``pid``, and its log holds
        what its client missed. Take ``pid`` and ``offset`` out of
        ``socket.auth`` either way; a fresh socket gets a new ``pid``.
        """
        auth = socket.auth if isinstance(socket.auth, dict) else {}
        pid = auth.pop("pid", None)
        offset = auth.pop("offset", None)
        if pid is not None:
            reason = await self._restore(socket, pid, offset, key_hash)
            if reason is None:
                socket._pid = pid
                metrics.recovered += 1
                return True
            metrics.not_recovered += 1
            logger.info("%r: not recovered, a fresh socket instead: %s", socket, reason)
        socket._pid = new_pid(socket.id)
        return False

    async def _restore(self, socket: Socket, pid: Any, offset: Any, key_hash: str | None) -> str | None:
        """Recover the socket; None when it is, else why not."""
        if offset is not None and not valid_offset(offset):
            return "the offset is not one of ours"
        socket_id = _socket_id(pid)
        if socket_id is None:
            return "the pid is not one of ours"
        if socket_id in self.rooms.sockets.get(socket.channel, ()):
            return self._take_here(socket, pid, offset, key_hash)
        if not self.bridge.enabled or not self._maybe_elsewhere(socket_id):
            return self._nowhere()
        return await self._take_from(socket_id, socket, pid, offset, key_hash)

    def _maybe_elsewhere(self, socket_id: str) -> bool:
        """Whether another process may hold a socket that is not in this one."""
        if process_of(socket_id) != self.bridge.process_id:
            return True
        return not self._handed_known or socket_id in self._handed

    def _nowhere(self) -> str:
        return f"no socket of that pid here: over RECOVERY_WINDOW ({self.window:g} s) or unknown"

    def _find(self, channel: str, pid: str, key_hash: str | None) -> Detached | str:
        """
        The stand-in ``pid`` names, made now if its socket is still
        connected, or why there is none. It must be of the Django session
        ``key_hash`` names.
        """
        socket_id = _socket_id(pid)
        found = self.rooms.sockets.get(channel, {}).get(socket_id)  # type: ignore[arg-type]
        own_pid = getattr(found, "_pid", None)
        if own_pid is None or not secrets.compare_digest(own_pid, pid):
            return self._nowhere()
        if isinstance(found, Detached):
            if found.key_hash != key_hash:
                return "it belonged to another Django session"
        else:
            if found._connection.identity.key_hash != key_hash:  # type: ignore[union-attr]
                return "it belongs to another Django session"
            # The old connection has not noticed it is gone yet (its pings
            # are not overdue): the new one takes over now.
            found._connection.disconnect_socket(found, "replaced by a recovery")  # type: ignore[union-attr]
            found = self.rooms.sockets.get(channel, {}).get(socket_id)  # type: ignore[arg-type]
            if not isinstance(found, Detached):
                return "its connection could not be taken over"
        return found

    def _take_here(self, socket: Socket, pid: str, offset: str | None, key_hash: str | None) -> str | None:
        stand_in = self._find(socket.channel, pid, key_hash)
        if isinstance(stand_in, str):
            return stand_in
        log = stand_in._log
        if not log.resume(offset):
            self._discard(stand_in)
            return _hole(log, offset)
        if stand_in.expiry is not None:
            stand_in.expiry.cancel()
        self.rooms.replace(stand_in, socket)
        socket._log = log
        socket._data = stand_in.data
        return None

    async def _take_from(
        self, socket_id: str, socket: Socket, pid: str, offset: str | None, key_hash: str | None
    ) -> str | None:
        # The holder is where emits to the socket's id go: the process its id
        # names, or the socket's own group once a recovery moved it.
        groups = [moved_socket_group(socket_id)]
        if process_of(socket_id) != self.bridge.process_id:
            groups.append(process_group(process_of(socket_id)))
        claim = await self._ask(groups, {"step": "claim", "pid": pid, "channel": socket.channel, "session": key_hash})
        if "refused" in claim:
            return claim["refused"]
        rooms = self.rooms
        socket.id = socket_id
        socket._data = claim["data"]
        # In its rooms before the hand-over, so that nothing sent meanwhile
        # is missed: while it is being recovered, the socket logs, not sends.
        joined = [rooms.add_socket(socket)] + [rooms.join(socket, room) for room in claim["rooms"]]
        for join in joined:
            await join
        if rooms.sockets.get(socket.channel, {}).get(socket_id) is not socket:
            # Its connection closed meanwhile: leave the socket where it is,
            # for the client's next try.
            rooms.remove_socket(socket)
            return "the connection closed during the recovery"
        taken = await self._ask(
            [process_group(claim["holder"])],
            {"step": "take", "pid": pid, "channel": socket.channel, "session": key_hash, "offset": offset},
        )
        if "refused" in taken:
            rooms.remove_socket(socket)
            socket.id = rooms.new_socket_id()
            socket._data = None
            socket._log = self.replay.new_log()  # type: ignore[union-attr]
            return taken["refused"]
        replay = self.replay
        log = replay.new_log()  # type: ignore[union-attr]
        log.trimmed = offset
        handed = set()
        for event_offset, text, buffers in taken["events"]:
            log.add(replay.entry(event_offset, text, list(buffers)))  # type: ignore[union-attr]
            handed.add(event_offset)
        for entry in socket._log.entries:  # type: ignore[union-attr]
            if entry[OFFSET] not in handed:
                log.add(entry)
        socket._log = log
        # Back in the process its id names: no longer elsewhere.
        self._handed.discard(socket_id)
        return None

    async def _ask(self, groups: list[str], message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` to the holder; its answer, or a refusal when none comes in time."""
        await self.bridge.ready()
        request = secrets.token_hex(8)
        answer = self._answers[request] = asyncio.get_running_loop().create_future()
        message.update(type=RECOVER, request=request, reply=self.bridge.process_id)
        self.bridge.publish(groups, message)
        try:
            return await asyncio.wait_for(answer, HOLDER_WAIT)
        except TimeoutError:
            return {
                "refused": f"no process answered for it within {HOLDER_WAIT:g} s: over RECOVERY_WINDOW "
                f"({self.window:g} s), or the process holding it stopped, and its log with it"
            }
        finally:
            del self._answers[request]

    # -- the holder's side ---------------------------------------------------

    def _on_request(self, message: dict[str, Any]) -> None:
        socket_id = _socket_id(message["pid"])
        if socket_id is None:
            return
        if socket_id in self.rooms.sockets.get(message["channel"], ()):
            answer = self._answer(message)
        elif self._maybe_elsewhere(socket_id):
            return  # not here: the process that holds it answers
        else:
            # One of this process's sockets, never handed over: it is gone.
            answer = {"refused": self._nowhere()}
        answer.update(type=RECOVER_ANSWER, request=message["request"])
        self.bridge.publish([process_group(message["reply"])], answer)

    def _answer(self, message: dict[str, Any]) -> dict[str, Any]:
        stand_in = self._find(message["channel"], message["pid"], message["session"])
        if isinstance(stand_in, str):
            return {"refused": stand_in}
        if message["step"] == "claim":
            return {"holder": self.bridge.process_id, "rooms": sorted(stand_in.rooms), "data": _portable(stand_in)}
        log = stand_in._log
        self._discard(stand_in)
        if not log.resume(message["offset"]):
            return {"refused": _hole(log, message["offset"])}
        self._handed_over(stand_in.id)
        return {"events": [(entry[OFFSET], entry[TEXT], entry[BUFFERS]) for entry in log.entries]}

    def _handed_over(self, socket_id: str) -> None:
        if process_of(socket_id) != self.bridge.process_id or not self._handed_known:
            return
        self._handed.add(socket_id)
        if len(self._handed) > MAX_HANDED:
            self._handed.clear()
            self._handed_known = False

    def _on_answer(self, message: dict[str, Any]) -> None:
        answer = self._answers.get(message["request"])
        if answer is not None and not answer.done():
            answer.set_result(message)


def new_pid(socket_id: str) -> str:
    """
    The private id of socket ``socket_id``: its id and a signature. Socket
    ids are not secret (an application may show them to other users); only
    a server with the deployment's ``SECRET_KEY`` can sign one.
    """
    return f"{socket_id}.{_pid_signature(socket_id)}"


def _pid_signature(socket_id: str) -> str:
    return salted_hmac("rain_ws.pid", socket_id).hexdigest()[:24]


def _socket_id(pid: Any) -> str | None:
    """The socket id in a ``pid`` ("<socket id>.<signature>"), or None if it is not one of ours."""
    if not isinstance(pid, str) or len(pid) > MAX_PID_LENGTH:
        return None
    socket_id, dot, signature = pid.partition(".")
    if not dot or not is_socket_id(socket_id) or not constant_time_compare(signature, _pid_signature(socket_id)):
        return None
    return socket_id


def _hole(log: ReplayLog, offset: str | None) -> str:
    if log.overflowed:
        return (
            "it missed more than its log keeps (RECOVERY_MAX_EVENTS or RECOVERY_MAX_BYTES): "
            "a replay would have a hole in it"
        )
    return f"its log does not reach back to the client's offset {offset!r}"


_PLAIN = (str, int, float, bool, bytes, type(None))


def _plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    return False


def _portable(stand_in: Detached) -> dict[str, Any] | None:
    """The socket's ``data``, if it can cross the channel layer (plain values only), else None."""
    if stand_in.data is None or _plain(stand_in.data):
        return stand_in.data
    logger.warning(
        "%r: socket.data holds values other than str, int, float, bool, bytes, None, lists and dicts; "
        "it is not carried to the process recovering the socket",
        stand_in,
    )
    return None
