"""
Reading and writing Django session stores for sockets.

Sync functions, called in worker threads by :mod:`rain_ws.sessions`: the
identity of a connection (its session and user), a session's current data,
and the save of what a listener changed, under a lock per backend so that
concurrent saves of one session lose nothing. Only Django's public session
API is used: a store's data is read through its mapping interface, which
loads and caches it, and written the same way before ``save()``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import secrets
import time
from collections.abc import Iterator
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

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Identity",
    "SessionExpired",
    "SessionLockTimeout",
    "Unserializable",
    "is_signed_cookie_engine",
    "load_identity",
    "load_session",
    "lock_file",
    "lock_key",
    "save_session",
]

logger = logging.getLogger("rain_ws")

class SessionExpired(Exception):
    """The socket's session was flushed, deleted or expired on the server."""


class Unserializable(Exception):
    """A value the listener put in the session cannot be serialized: nothing was saved."""


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
    data = dict(store.items())
    if not _loaded(store):
        return Identity(session_key, None, {}, False, _anonymous())
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
    data = dict(store.items())
    if not _loaded(store):
        raise SessionExpired
    return data


def _loaded(store: SessionBase) -> bool:
    """
    Whether the store's session exists: a failed load clears the key
    (database, cache and file backends) or marks the store modified to issue
    a fresh cookie (signed cookies).
    """
    return store.session_key is not None and not store.modified


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
    store.keys()  # loads the session as stored now
    if not _loaded(store):
        raise SessionExpired
    for key in deleted:
        store.pop(key, None)
    store.update(changed)
    data = dict(store.items())
    try:
        store.encode(data)  # before anything is written
    except (TypeError, ValueError) as error:
        raise Unserializable(str(error)) from error
    try:
        store.save(must_create=False)
    except UpdateError:
        raise SessionExpired from None
    return data
