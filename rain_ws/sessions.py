"""
The Django session's lifecycle on sockets, in the shape of Django's
``SessionMiddleware``: bound at the CONNECT, loaded before each event, saved
after it, and ended everywhere at logout.

A WebSocket handshake carries the browser's session cookie, but no response
ever carries one back, so a socket can read and update a session that exists
and can never create one. A connection resolves its session and user once,
at its first namespace CONNECT, in one trip to a worker thread
(:class:`ConnectionSession`). :func:`bind_session` applies the channel's
policy at each CONNECT (``require_session``, ``login_required``,
``use_session``); on ``use_session`` channels a :class:`BoundSession` then
reloads the session before each event and saves what the listener changed
after it. :class:`SessionIndex` finds a session's connections in this
process, so that a logout anywhere reaches them at once. The stores
themselves are read and written by :mod:`rain_ws.session_store`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings as django_settings
from django.http.cookie import parse_cookie

from .aio import run_sync
from .exceptions import ConnectRefused, RainError
from .layer import ALL_PROCESSES, LayerBridge, group_name
from .session_store import (
    Identity,
    SessionExpired,
    Unserializable,
    is_signed_cookie_engine,
    load_identity,
    load_session,
    save_session,
)

if TYPE_CHECKING:
    from .registry import Channel

__all__ = [
    "SESSION_EXPIRED",
    "SESSION_UNAVAILABLE",
    "BoundSession",
    "ConnectionSession",
    "SessionExpired",
    "SessionIndex",
    "SessionUnavailable",
    "SocketSession",
    "bind_session",
    "session_hash",
]

logger = logging.getLogger("rain_ws")

#: The ack error of an event whose session has ended.
SESSION_EXPIRED = {"message": "session expired", "code": "session_expired"}
#: The ack error of an event whose session could not be read or written.
SESSION_UNAVAILABLE = {"message": "session store unavailable", "code": "session_unavailable"}

#: The layer message that ends a session's connections in every process.
END_SESSION = "rain_ws.end_session"


class SessionUnavailable(Exception):
    """The session store failed (logged once until it works again)."""


class Ending(Protocol):
    """A connection that a session's end must reach."""

    def end_session(self) -> None: ...


def session_hash(session_key: str) -> str:
    """How a session is named between processes: never the key itself."""
    return group_name("s", session_key)


_store_failing = False


def _store_failed(error: Exception) -> None:
    """Log a session store failure once, not once per event, until it recovers."""
    global _store_failing
    if not _store_failing:
        _store_failing = True
        logger.error("session store unavailable: %s: %s", type(error).__name__, error, exc_info=error)


def _store_worked() -> None:
    global _store_failing
    if _store_failing:
        _store_failing = False
        logger.warning("session store available again")


async def _in_store(function: Any, *args: Any) -> Any:
    """Run a store call in a worker thread; its failures become :class:`SessionUnavailable`."""
    try:
        result = await run_sync(function, *args)
    except (SessionExpired, Unserializable):
        raise
    except Exception as error:
        _store_failed(error)
        raise SessionUnavailable from error
    _store_worked()
    return result


class SessionIndex:
    """
    The connections of each session in this process, by session hash, so
    that a session's end (a logout, a flush) reaches them at once, here and,
    through the channel layer, in every other process.
    """

    def __init__(self, bridge: LayerBridge) -> None:
        self.bridge = bridge
        self.sessions: dict[str, set[Ending]] = {}
        bridge.on(END_SESSION, self._on_end)

    def add(self, key_hash: str, connection: Ending) -> None:
        self.sessions.setdefault(key_hash, set()).add(connection)

    def remove(self, key_hash: str, connection: Ending) -> None:
        connections = self.sessions.get(key_hash)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self.sessions[key_hash]

    def end(self, key_hash: str) -> asyncio.Future[None] | None:
        """
        End a session's connections in every process: here at once; return
        the future of the message to the others (``None`` without a layer).
        """
        self._end_here(key_hash)
        if not self.bridge.enabled:
            return None
        return self.bridge.publish([ALL_PROCESSES], {"type": END_SESSION, "session": key_hash}, track=True)

    def _end_here(self, key_hash: str) -> None:
        for connection in list(self.sessions.pop(key_hash, ())):
            connection.end_session()

    def _on_end(self, message: dict[str, Any]) -> None:
        self._end_here(message["session"])


class ConnectionSession:
    """
    The session of one connection: the one its handshake's cookie names,
    read once, at the first CONNECT, and shared by its namespaces.
    """

    __slots__ = ("_ended", "_hash", "_index", "_resolving", "scope")

    def __init__(self, scope: dict[str, Any], index: SessionIndex) -> None:
        self.scope = scope
        self._index = index
        self._resolving: asyncio.Future[Identity] | None = None
        self._hash: str | None = None
        self._ended = False

    @property
    def key_hash(self) -> str | None:
        """A digest of the live session's key, once a CONNECT read it; None without one."""
        return self._hash

    def _cookie_key(self) -> str | None:
        """The session key of the handshake's cookie (none once that session ended)."""
        if self._ended:
            return None
        for name, value in self.scope.get("headers", ()):
            if name == b"cookie":
                return parse_cookie(value.decode("latin-1")).get(django_settings.SESSION_COOKIE_NAME)
        return None

    async def resolve(self, owner: Ending) -> Identity:
        """
        The connection's session and user (without I/O when the handshake
        carried no session cookie); raise :class:`SessionUnavailable` when
        the store fails. A live session registers ``owner`` in the index.
        """
        session_key = self._cookie_key()
        if not session_key:
            identity = load_identity(None)
        else:
            if self._resolving is None:
                self._resolving = asyncio.ensure_future(_in_store(load_identity, session_key))
            try:
                # Shielded: a socket that goes away while waiting must not
                # cancel the read another namespace's CONNECT waits for too.
                identity = await asyncio.shield(self._resolving)
            except SessionUnavailable:
                self._resolving = None  # the next CONNECT tries again
                raise
        self.scope["session"] = identity.session
        self.scope["user"] = identity.user
        if identity.live and self._hash is None and not self._ended:
            self._hash = session_hash(identity.session_key)  # type: ignore[arg-type]
            self._index.add(self._hash, owner)
        return identity

    def end(self, owner: Ending) -> None:
        """The session has ended: later CONNECTs of this connection have none."""
        self._ended = True
        self._resolving = None
        self.close(owner)

    def close(self, owner: Ending) -> None:
        """The connection is gone: leave the index."""
        if self._hash is not None:
            self._index.remove(self._hash, owner)
            self._hash = None


async def bind_session(
    connection_session: ConnectionSession, owner: Ending, channel: Channel
) -> tuple[Any, SocketSession, BoundSession | None]:
    """
    Apply ``channel``'s session policy to a CONNECT: return the socket's
    user, its ``socket.session``, and on ``use_session`` channels the
    :class:`BoundSession` that loads and saves it around each event. Raise
    :class:`~rain_ws.exceptions.ConnectRefused` when the CONNECT is refused.
    """
    try:
        identity = await connection_session.resolve(owner)
    except SessionUnavailable:
        raise ConnectRefused("store_unavailable", SESSION_UNAVAILABLE["message"]) from None
    if channel.require_session and not identity.live:
        raise ConnectRefused("session_required", "session required")
    user = identity.user
    if channel.login_required and not getattr(user, "is_authenticated", False):
        raise ConnectRefused("login_required", "login required")
    if not identity.live:
        return user, SocketSession(
            {},
            "this socket has no session, and a socket cannot create one: "
            "the page must give the browser its session cookie first",
        ), None
    if not channel.use_session:
        return user, SocketSession(
            dict(identity.data), "socket.session is read-only on channels without use_session = True"
        ), None
    if is_signed_cookie_engine():
        return user, SocketSession(
            dict(identity.data),
            "the signed_cookies session backend keeps the session in the browser's "
            "cookie, which a socket cannot update",
        ), None
    bound = BoundSession(identity.session_key)  # type: ignore[arg-type]
    try:
        session = await bound.load()
    except SessionExpired:
        if channel.require_session:
            raise ConnectRefused("session_required", "session required") from None
        raise ConnectRefused("session_expired", SESSION_EXPIRED["message"]) from None
    except SessionUnavailable:
        raise ConnectRefused("store_unavailable", SESSION_UNAVAILABLE["message"]) from None
    return user, session, bound


class BoundSession:
    """The session of a socket on a ``use_session`` channel: loaded before each event, saved after it."""

    __slots__ = ("session_key",)

    def __init__(self, session_key: str) -> None:
        self.session_key = session_key

    async def load(self) -> SocketSession:
        """
        The session as stored now; raise :class:`SessionExpired` if it has
        ended, :class:`SessionUnavailable` if the store fails.
        """
        return SocketSession(await _in_store(load_session, self.session_key), None)

    async def save(self, session: SocketSession) -> dict[str, str] | None:
        """
        Save the listener's changes; return the ack error when that failed
        (:data:`SESSION_EXPIRED` when the session has ended meanwhile).
        """
        changed, deleted = session.changes()
        try:
            await _in_store(save_session, self.session_key, changed, deleted)
        except SessionExpired:
            return SESSION_EXPIRED
        except Unserializable as error:
            logger.warning("session not saved: %s", error)
            return {"message": f"the session cannot store this value: {error}", "code": "session_unserializable"}
        except SessionUnavailable:
            return SESSION_UNAVAILABLE
        return None


#: What SocketSession records for a key deleted since the load.
_DELETED = object()


class SocketSession(MutableMapping[str, Any]):
    """
    ``socket.session``: the session's data as of the current event (or of the
    CONNECT, on channels without ``use_session``).

    It records the keys set and deleted, which is what gets saved after the
    listener. As with Django's sessions, changing a value in place
    (``socket.session["notes"].append(...)``) is not seen: assign the key
    again, or set ``modified = True`` to save every key.
    """

    __slots__ = ("_all_modified", "_changes", "_data", "_read_only_reason")

    def __init__(self, data: dict[str, Any], read_only_reason: str | None) -> None:
        self._data = data
        self._read_only_reason = read_only_reason
        # The keys set (with their values) and deleted (with _DELETED) since
        # the load, made at the first change: most sessions are only read.
        self._changes: dict[str, Any] | None = None
        self._all_modified = False

    def _check_writable(self) -> None:
        if self._read_only_reason is not None:
            raise RainError(self._read_only_reason, "session_read_only")

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._check_writable()
        self._data[key] = value
        if self._changes is None:
            self._changes = {}
        self._changes[key] = value

    def __delitem__(self, key: str) -> None:
        self._check_writable()
        del self._data[key]
        if self._changes is None:
            self._changes = {}
        self._changes[key] = _DELETED

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<SocketSession {self._data!r}>"

    @property
    def modified(self) -> bool:
        return self._all_modified or bool(self._changes)

    @modified.setter
    def modified(self, value: bool) -> None:
        if value:
            self._check_writable()
        self._all_modified = value

    def changes(self) -> tuple[dict[str, Any], set[str]]:
        """The keys to write and the keys to delete."""
        changes = self._changes or {}
        deleted = {key for key, value in changes.items() if value is _DELETED}
        if self._all_modified:
            return dict(self._data), deleted
        return {key: value for key, value in changes.items() if value is not _DELETED}, deleted
