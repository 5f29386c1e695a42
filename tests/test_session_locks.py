"""
The lock a socket's session save takes on the cache and file session stores
(``rain_ws.session_store.save_session``), in this process: a held lock makes the
save wait and then fail without writing, and a save releases only its own
lock. ``test_sessions_live.py`` runs concurrent saves through real servers.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.cache import caches
from django.test import override_settings

from rain_ws import session_store
from rain_ws.session_store import SessionLockTimeout, lock_file, lock_key, save_session


def stored(session_key: str) -> dict:
    return session_store.load_session(session_key)


def new_session(**data: object) -> str:
    store = session_store._store_class()()
    store.update(data)
    store.create()
    return store.session_key


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(session_store, "LOCK_WAIT", 0.2)
    return 0.2


@pytest.fixture
def cache_sessions() -> Iterator[None]:
    with override_settings(
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "locks"}},
    ):
        yield
        caches["default"].clear()


@pytest.fixture
def file_sessions(tmp_path: Path) -> Iterator[Path]:
    from django.contrib.sessions.backends.file import SessionStore

    def forget_directory() -> None:
        # The store's class keeps the first directory it was given, for good.
        if "_storage_path" in vars(SessionStore):
            del SessionStore._storage_path

    forget_directory()
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.file", SESSION_FILE_PATH=str(tmp_path)):
        yield tmp_path
    forget_directory()


@pytest.fixture
def file_cache_sessions(tmp_path: Path) -> Iterator[Path]:
    with override_settings(
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        CACHES={"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}},
    ):
        yield tmp_path


# -- a lock through the cache (cache.add) -----------------------------------


def test_cache_lock_key_names_no_session_data(cache_sessions: None) -> None:
    key = new_session(a=1)
    assert lock_key(key).startswith("rain_ws.session-lock:")
    assert key not in lock_key(key)
    assert lock_key(key) != lock_key(key[:-1] + ("a" if key[-1] != "a" else "b"))


def test_cache_save_releases_its_lock(cache_sessions: None) -> None:
    key = new_session(a=1)
    assert save_session(key, {"b": 2}, set()) == {"a": 1, "b": 2}
    assert caches["default"].get(lock_key(key)) is None
    assert stored(key) == {"a": 1, "b": 2}


def test_cache_save_waits_for_a_held_lock_then_fails(
    cache_sessions: None, short_wait: float, caplog: pytest.LogCaptureFixture
) -> None:
    key = new_session(a=1)
    caches["default"].add(lock_key(key), "another save", 10)
    started = time.monotonic()
    with pytest.raises(SessionLockTimeout):
        save_session(key, {"a": 2}, set())
    assert time.monotonic() - started >= short_wait
    assert stored(key) == {"a": 1}, "nothing is written without the lock"
    assert caches["default"].get(lock_key(key)) == "another save", "another save's lock is not touched"
    assert "held by other saves" in caplog.text


def test_cache_save_gets_a_lock_released_while_it_waits(cache_sessions: None) -> None:
    key = new_session(a=1)
    cache = caches["default"]
    cache.add(lock_key(key), "another save", 10)
    threading.Timer(0.1, cache.delete, [lock_key(key)]).start()
    assert save_session(key, {"a": 2}, set()) == {"a": 2}
    assert cache.get(lock_key(key)) is None


def test_cache_save_does_not_release_a_lock_taken_after_its_own_expired(
    cache_sessions: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_session(a=1)
    apply_changes = session_store._apply_changes

    def slow_save(*args: object) -> dict:
        # The save overran LOCK_TIMEOUT: its lock expired and another save took it.
        caches["default"].set(lock_key(key), "another save", 10)
        return apply_changes(*args)

    monkeypatch.setattr(session_store, "_apply_changes", slow_save)
    save_session(key, {"a": 2}, set())
    assert caches["default"].get(lock_key(key)) == "another save"


def test_cache_save_of_an_ended_session_releases_its_lock(cache_sessions: None) -> None:
    key = new_session(a=1)
    caches["default"].clear()
    with pytest.raises(session_store.SessionExpired):
        save_session(key, {"a": 2}, set())
    assert caches["default"].get(lock_key(key)) is None


# -- a lock file (file sessions, file-based cache) ---------------------------


class HeldLockFile:
    """Another process's (or thread's) save, holding the session's lock file."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.descriptor = os.open(path, os.O_RDWR | os.O_CREAT)
        fcntl.flock(self.descriptor, fcntl.LOCK_EX)

    def release(self) -> None:
        os.close(self.descriptor)


@pytest.mark.parametrize("store", ["file", "file_cache"])
def test_file_save_waits_for_a_held_lock_file_then_fails(
    store: str, request: pytest.FixtureRequest, short_wait: float
) -> None:
    directory = request.getfixturevalue(f"{store}_sessions")
    key = new_session(a=1)
    assert save_session(key, {"a": 2}, set()) == {"a": 2}
    path = lock_file(str(directory), key)
    assert os.path.exists(path), "the save locked this file"
    held = HeldLockFile(path)
    try:
        with pytest.raises(SessionLockTimeout):
            save_session(key, {"a": 3}, set())
        assert stored(key) == {"a": 2}
    finally:
        held.release()
    assert save_session(key, {"a": 3}, set()) == {"a": 3}


def test_file_save_gets_a_lock_file_released_while_it_waits(file_sessions: Path) -> None:
    key = new_session(a=1)
    held = HeldLockFile(lock_file(str(file_sessions), key))
    threading.Timer(0.1, held.release).start()
    assert save_session(key, {"a": 2}, set()) == {"a": 2}


def test_lock_files_are_not_sessions(file_sessions: Path) -> None:
    """Django's ``clearsessions`` walks the session directory: the lock files are left alone, and vice versa."""
    from django.contrib.sessions.backends.file import SessionStore

    key = new_session(a=1)
    save_session(key, {"a": 2}, set())
    SessionStore.clear_expired()
    assert stored(key) == {"a": 2}
    assert os.path.exists(lock_file(str(file_sessions), key))
    assert sorted(entry.name for entry in file_sessions.iterdir()) == [
        session_store.LOCK_DIRECTORY, f"sessionid{key}"
    ]
