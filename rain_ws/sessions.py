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

import hashlib
import logging
import os
import random
import secrets
import time
from collections.abc import Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.backends.file import SessionStore as FileSessionStore
from django.core.cache import BaseCache, caches
from django.core.cache.backends.filebased import FileBasedCache
from django.db import router, transaction
from django.http import HttpRequest

from .exceptions import RainError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "SESSION_EXPIRED",
    "SESSION_UNAVAILABLE",
    "Identity",
    "SessionExpired",
    "SessionLockTimeout",
    "SocketSession",
    "is_signed_cookie_engine",
    "load_identity",
    "load_session",
    "lock_file",
    "lock_key",
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


class SessionLockTimeout(Exception):
    """
    A save could not take its session's lock within :data:`LOCK_WAIT`
    seconds; the event is acked with :data:`SESSION_UNAVAILABLE`.
    """


#: How long a save waits for its session's lock (cache and file stores).
LOCK_WAIT = 3.0
#: How long a lock taken through the cache lives if its holder never releases
#: it (a process killed mid-save): it bounds how long that session's saves
#: fail. A save holds the lock for one read and one write of the session.
LOCK_TIMEOUT = 10
#: The lock key's prefix: followed by a hash of the session key, so that it
#: never names a session's data (the cache backend's keys are
#: ``django.contrib.sessions.cache<session key>``).
LOCK_KEY_PREFIX = "rain_ws.session-lock:"
#: The directory, beside the session files or in the file-based cache's
#: directory, of the files whose ``flock`` locks sessions. A fixed number of
#: files, each shared by the sessions that hash to it: one file per session
#: could never be deleted safely (a waiter may hold it open).
LOCK_DIRECTORY = "rain_ws-session-locks"
LOCK_FILES = 64


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
    request's changes to other keys survive. The session is locked from the
    read to the write, so no other socket's save can slip in between: the
    database backends lock the session's row, the cache backend takes a lock
    through the session cache, and the file backend (and a file-based
    session cache) ``flock`` a lock file, on systems that have it. A lock
    not had within :data:`LOCK_WAIT` raises :class:`SessionLockTimeout`. The
    session's expiry moves forward, as any save does. Return the data saved.
    """
    store = _store_class()(session_key)
    if isinstance(store, DatabaseSessionStore):
        model = store.model
        with transaction.atomic(using=router.db_for_write(model)):
            if not model.objects.select_for_update().filter(session_key=session_key).exists():
                raise SessionExpired
            return _apply_changes(store, changed, deleted)
    with _session_lock(store, session_key):
        return _apply_changes(store, changed, deleted)


def _session_lock(store: SessionBase, session_key: str) -> AbstractContextManager[None]:
    """The lock that keeps other saves of this session out, per backend."""
    if isinstance(store, FileSessionStore):
        if fcntl is None:
            return nullcontext()
        return _file_lock(store.storage_path, session_key)
    if isinstance(store, CacheSessionStore):
        cache = caches[settings.SESSION_CACHE_ALIAS]
        if isinstance(cache, FileBasedCache) and fcntl is not None:
            # Its add() is a check then a write, not atomic: two saves could
            # both take the lock. Its files are on one machine: flock them.
            return _file_lock(cache._dir, session_key)
        return _cache_lock(cache, session_key)
    return nullcontext()


def _lock_name(session_key: str) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest()


def _waited_too_long(deadline: float, what: str) -> bool:
    if time.monotonic() < deadline:
        return False
    logger.warning("session not saved: its lock %s was held by other saves for over %s s", what, LOCK_WAIT)
    return True


def _pause(pause: float) -> float:
    """Sleep about ``pause`` seconds (jittered, so waiters do not retry in step); return the next pause."""
    time.sleep(pause * random.uniform(0.5, 1.0))
    return min(pause * 2, 0.05)


@contextmanager
def _cache_lock(cache: BaseCache, session_key: str) -> Iterator[None]:
    """
    Hold the session's lock in ``cache``: ``add()`` stores the key only if it
    is absent, atomically on the local-memory, Redis, Memcached and database
    caches, so only one save at a time holds it.
    """
    key = lock_key(session_key)
    token = secrets.token_hex(16)
    deadline = time.monotonic() + LOCK_WAIT
    pause = 0.002
    while not cache.add(key, token, LOCK_TIMEOUT):
        if _waited_too_long(deadline, f"(cache key {key})"):
            raise SessionLockTimeout(f"session lock {key} not had within {LOCK_WAIT} s")
        pause = _pause(pause)
    try:
        yield
    finally:
        # Release the lock only if it is still ours: it may have expired
        # (LOCK_TIMEOUT) and been taken by another save. Between the get and
        # the delete it could still expire and be taken, and the delete then
        # frees the other save's lock; that needs this save to have held the
        # lock for all of LOCK_TIMEOUT already, when the lock has stopped
        # protecting it anyway. Caches offer no compare-and-delete.
        try:
            if cache.get(key) == token:
                cache.delete(key)
        except Exception as error:
            # The session is saved; the lock expires by itself.
            logger.warning("session lock %s not released: %s: %s", key, type(error).__name__, error)


def lock_file(directory: str, session_key: str) -> str:
    """The path of the file whose ``flock`` locks the session, for stores in ``directory``."""
    stripe = int(_lock_name(session_key)[:8], 16) % LOCK_FILES
    return os.path.join(directory, LOCK_DIRECTORY, f"{stripe:02x}.lock")


def lock_key(session_key: str) -> str:
    """The cache key of the session's lock, for stores in a cache."""
    return LOCK_KEY_PREFIX + _lock_name(session_key)


@contextmanager
def _file_lock(directory: str, session_key: str) -> Iterator[None]:
    """
    Hold an exclusive ``flock`` on the session's lock file in ``directory``.
    Each save opens the file anew, so saves in threads of one process
    exclude each other as saves in different processes do; the kernel
    releases the lock when the file is closed, or its process dies.
    """
    path = lock_file(directory, session_key)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.002
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if _waited_too_long(deadline, f"(file {path})"):
                    raise SessionLockTimeout(f"session lock file {path} not locked within {LOCK_WAIT} s") from None
                pause = _pause(pause)
        yield
    finally:
        os.close(descriptor)  # releases the lock


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
