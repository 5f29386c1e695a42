"""
Django sessions and users on sockets.

A WebSocket handshake carries the browser's session cookie, but no response
ever carries one back, so a socket can read and update a session that exists
and can never create one. The session and user are resolved once per
connection, at the first namespace CONNECT, in one trip to a worker thread;
channels that set ``use_session`` also reload the session before each event
and save what the listener changed after it (:class:`SocketSession`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import router, transaction
from django.http import HttpRequest

from .exceptions import RainError

__all__ = [
    "SESSION_EXPIRED",
    "SESSION_UNAVAILABLE",
    "Identity",
    "SessionExpired",
    "SocketSession",
    "is_signed_cookie_engine",
    "load_identity",
    "load_session",
    "save_session",
    "store_failed",
    "store_worked",
]

logger = logging.getLogger("rain_ws")

#: The ack error of an event whose session has ended.
SESSION_EXPIRED = {"message": "session expired", "code": "session_expired"}
#: The ack error of an event whose session could not be read or written.
SESSION_UNAVAILABLE = {"message": "session store unavailable", "code": "session_unavailable"}


class SessionExpired(Exception):
    """The socket's session was flushed, deleted or expired on the server."""


def _store_class() -> type[SessionBase]:
    return import_module(settings.SESSION_ENGINE).SessionStore


def is_signed_cookie_engine() -> bool:
    """Whether sessions live in the browser's cookie, where a socket cannot write."""
    return settings.SESSION_ENGINE == "django.contrib.sessions.backends.signed_cookies"


_store_failing = False


def store_failed(error: Exception) -> None:
    """Log a session store failure once, not once per event, until it recovers."""
    global _store_failing
    if not _store_failing:
        _store_failing = True
        logger.error("session store unavailable: %s: %s", type(error).__name__, error, exc_info=error)


def store_worked() -> None:
    global _store_failing
    if _store_failing:
        _store_failing = False
        logger.warning("session store available again")


class Identity:
    """The session and user of one connection, as of its first CONNECT."""

    __slots__ = ("data", "live", "session", "session_key", "user")

    def __init__(
        self, session_key: str | None, session: SessionBase | None, data: dict[str, Any], live: bool, user: Any
    ) -> None:
        self.session_key = session_key
        self.session = session
        self.data = data
        self.live = live
        self.user = user


def _anonymous() -> Any:
    if apps.is_installed("django.contrib.auth"):
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return None


def load_identity(session_key: str | None) -> Identity:
    """
    Read the session named by the cookie, and its user (sync: call it in a
    worker thread). A missing, expired or forged session is not live, and its
    user is anonymous.
    """
    if not session_key:
        return Identity(None, None, {}, False, _anonymous())
    store = _store_class()(session_key)
    data = store.load()
    # A failed load clears the key (database and cache backends) or marks the
    # store modified to issue a fresh cookie (signed cookies).
    live = store.session_key is not None and not store.modified
    if not live:
        return Identity(session_key, None, {}, False, _anonymous())
    store._session_cache = data  # type: ignore[attr-defined]
    user = _anonymous()
    if apps.is_installed("django.contrib.auth"):
        from django.contrib.auth import get_user

        request = HttpRequest()
        request.session = store
        # Django's own checks: the backend, the user still existing, and the
        # session hash (a password change logs the session out).
        user = get_user(request)
        if store.session_key is None:  # get_user flushed a stale session
            return Identity(session_key, None, {}, False, _anonymous())
    return Identity(session_key, store, dict(data), True, user)


def load_session(session_key: str) -> dict[str, Any]:
    """The session's current data; raise SessionExpired if it has ended."""
    store = _store_class()(session_key)
    data = store.load()
    if store.session_key is None or store.modified:
        raise SessionExpired
    return data


def save_session(session_key: str, changed: dict[str, Any], deleted: set[str]) -> dict[str, Any]:
    """
    Apply a listener's changes to the session as stored now, and save it.

    Only the keys the listener set or deleted are written, so a concurrent
    request's changes to other keys survive. With the database backends the
    session's row is locked from the read to the write, so no save can slip
    in between. The session's expiry moves forward, as any save does. Return
    the data saved.
    """
    store = _store_class()(session_key)
    if isinstance(store, DatabaseSessionStore):
        model = store.model
        with transaction.atomic(using=router.db_for_write(model)):
            if not model.objects.select_for_update().filter(session_key=session_key).exists():
                raise SessionExpired
            return _apply_changes(store, changed, deleted)
    return _apply_changes(store, changed, deleted)


def _apply_changes(store: SessionBase, changed: dict[str, Any], deleted: set[str]) -> dict[str, Any]:
    data = store.load()
    if store.session_key is None or store.modified:
        raise SessionExpired
    for key in deleted:
        data.pop(key, None)
    data.update(changed)
    store.encode(data)  # raises before anything is written if a value cannot be serialized
    store._session_cache = data  # type: ignore[attr-defined]
    try:
        store.save(must_create=False)
    except UpdateError:
        raise SessionExpired from None
    return data


class SocketSession(MutableMapping[str, Any]):
    """
    ``socket.session``: the session's data as of the current event (or of the
    CONNECT, on channels without ``use_session``).

    It records the keys set and deleted, which is what gets saved after the
    listener. As with Django's sessions, changing a value in place
    (``socket.session["notes"].append(...)``) is not seen: assign the key
    again, or set ``modified = True`` to save every key.
    """

    __slots__ = ("_all_modified", "_data", "_read_only_reason", "changed", "deleted")

    def __init__(self, data: dict[str, Any], read_only_reason: str | None) -> None:
        self._data = data
        self._read_only_reason = read_only_reason
        self.changed: dict[str, Any] = {}
        self.deleted: set[str] = set()
        self._all_modified = False

    def _check_writable(self) -> None:
        if self._read_only_reason is not None:
            raise RainError(self._read_only_reason, "session_read_only")

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._check_writable()
        self._data[key] = value
        self.changed[key] = value
        self.deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        self._check_writable()
        del self._data[key]
        self.changed.pop(key, None)
        self.deleted.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<SocketSession {self._data!r}>"

    @property
    def modified(self) -> bool:
        return self._all_modified or bool(self.changed) or bool(self.deleted)

    @modified.setter
    def modified(self, value: bool) -> None:
        if value:
            self._check_writable()
        self._all_modified = value

    def changes(self) -> tuple[dict[str, Any], set[str]]:
        """The keys to write and the keys to delete."""
        if self._all_modified:
            return dict(self._data), set(self.deleted)
        return self.changed, self.deleted
