"""
Django sessions shared by pages and sockets, end to end.

A real daphne serves the test project; an HTTP client with a cookie jar gets
its session cookie from plain Django views (``tests/project/accounts``) and
the official clients carry that cookie in the WebSocket handshake, as a
browser does. What one side writes must be what the other reads, and a
session ended over HTTP must end the sockets using it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import sqlite3
import time
import uuid
from datetime import datetime, timedelta, timezone
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from yarl import URL

from rain_ws.session_store import LOCK_WAIT, lock_file
from tests.support.node import requires_node, run_node
from tests.support.servers import Server, run_server

MEMO = "/memo/1.0/memo"
PRIVATE = "/memo/1.0/private"
SNAPSHOT = "/memo/1.0/snapshot"
ECHO = "/echo/2.0/echo"
WAIT = 10.0
PASSWORD = "correct horse battery staple"

SESSION_EXPIRED = {"message": "session expired", "code": "session_expired"}
SESSION_UNAVAILABLE = {"message": "session store unavailable", "code": "session_unavailable"}


def session_cookie(value: str) -> str:
    """The Cookie header a browser would send with the WebSocket handshake."""
    return f"{settings.SESSION_COOKIE_NAME}={value}"


def tampered(value: str) -> str:
    """``value`` with its last character changed."""
    return value[:-1] + ("a" if value[-1] != "a" else "b")


class Browser:
    """The page beside the sockets: an HTTP client keeping the server's cookies."""

    def __init__(self, server: Server) -> None:
        self.server = server
        # unsafe=True: the server is an IP address, whose cookies aiohttp drops otherwise.
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    @property
    def session_key(self) -> str | None:
        cookie = self.http.cookie_jar.filter_cookies(URL(self.server.url)).get(settings.SESSION_COOKIE_NAME)
        return cookie.value if cookie is not None else None

    @property
    def cookie(self) -> str:
        """This browser's session cookie, as a Cookie header."""
        assert self.session_key, "the server has not given this browser a session cookie"
        return session_cookie(self.session_key)

    async def _request(self, method: str, path: str, **options: Any) -> Any:
        async with self.http.request(method, self.server.url + path, **options) as response:
            assert response.status == 200, f"{method} {path}: {response.status} {await response.text()}"
            return await response.json()

    async def visit(self) -> None:
        await self._request("GET", "/accounts/visit/")

    async def login(self, username: str) -> None:
        await self._request("POST", "/accounts/login/", data={"username": username, "password": PASSWORD})

    async def logout(self) -> None:
        await self._request("POST", "/accounts/logout/")

    async def get(self, key: str) -> Any:
        return await self._request("GET", f"/accounts/session/{key}/")

    async def set(self, key: str, value: Any) -> None:
        await self._request("POST", f"/accounts/session/{key}/", json=value)

    async def close(self) -> None:
        await self.http.close()


class Sockets:
    """
    python-socketio's AsyncClient, recording in order what every namespace
    of its one connection receives: events, refusals and disconnects.
    """

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.seen: list[tuple[str, str, tuple[Any, ...]]] = []
        self._changed = asyncio.Event()
        self.client.on("*", self._on_event, namespace="*")
        self.client.on("connect_error", self._on_connect_error, namespace="*")
        self.client.on("disconnect", self._on_disconnect, namespace="*")

    def _record(self, namespace: str, event: str, args: tuple[Any, ...]) -> None:
        self.seen.append((namespace, event, args))
        self._changed.set()

    async def _on_event(self, event: str, namespace: str, *args: Any) -> None:
        self._record(namespace, event, args)

    async def _on_connect_error(self, namespace: str, data: Any) -> None:
        self._record(namespace, "connect_error", (data,))

    async def _on_disconnect(self, namespace: str, reason: str) -> None:
        self._record(namespace, "disconnect", (reason,))

    async def connect(self, server: Server, *namespaces: str, cookie: str | None = None) -> None:
        headers = {"Cookie": cookie} if cookie is not None else {}
        await asyncio.wait_for(
            self.client.connect(
                server.url, namespaces=list(namespaces), headers=headers, transports=["websocket"], wait_timeout=WAIT
            ),
            WAIT,
        )

    async def refusal(self, server: Server, namespace: str, cookie: str | None = None) -> Any:
        """Connect to ``namespace`` expecting a refusal; return the CONNECT_ERROR's payload."""
        with pytest.raises(socketio.exceptions.ConnectionError):
            await self.connect(server, namespace, cookie=cookie)
        return (await self.received(namespace, "connect_error"))[0]

    async def call(self, namespace: str, event: str, *args: Any) -> Any:
        return await self.client.call(event, args, namespace=namespace, timeout=WAIT)

    async def received(self, namespace: str, event: str) -> tuple[Any, ...]:
        """The arguments of the first ``event`` on ``namespace``, waiting for it if need be."""

        async def first() -> tuple[Any, ...]:
            while True:
                for seen_namespace, seen_event, args in self.seen:
                    if (seen_namespace, seen_event) == (namespace, event):
                        return args
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(first(), WAIT)

    def history(self, namespace: str) -> list[tuple[str, tuple[Any, ...]]]:
        return [(event, args) for seen_namespace, event, args in self.seen if seen_namespace == namespace]

    async def ended(self, *namespaces: str) -> None:
        """
        Wait for the server to disconnect each of ``namespaces``, and check
        that a ``session_expired`` event came first.
        """
        for namespace in namespaces:
            await self.received(namespace, "disconnect")
            ending = [entry for entry in self.history(namespace) if entry[0] in ("session_expired", "disconnect")]
            assert ending == [("session_expired", ()), ("disconnect", ("server disconnect",))], namespace

    async def close(self) -> None:
        await self.client.disconnect()


@pytest.fixture
async def browser(daphne_server: Server) -> AsyncIterator[Browser]:
    browser = Browser(daphne_server)
    yield browser
    await browser.close()


@pytest.fixture
async def sockets() -> AsyncIterator[Sockets]:
    sockets = Sockets()
    yield sockets
    await sockets.close()


def new_user() -> str:
    """A user with a unique name (the database outlives each test), ready to log in."""
    username = f"user-{uuid.uuid4().hex[:12]}"
    User.objects.create_user(username, password=PASSWORD)
    return username


@pytest.fixture(scope="module")
def username() -> str:
    return new_user()


async def user_id(username: str) -> int:
    return await sync_to_async(lambda: User.objects.get(username=username).pk)()


async def session_count() -> int:
    return await sync_to_async(Session.objects.count)()


# -- the database backend (the project's default) --------------------------


async def test_socket_and_http_see_each_others_writes(
    browser: Browser, sockets: Sockets, daphne_server: Server
) -> None:
    await browser.visit()
    await sockets.connect(daphne_server, MEMO, cookie=browser.cookie)
    assert await sockets.call(MEMO, "write", "color", "red") == (None, True)
    assert await browser.get("color") == "red"
    await browser.set("color", "blue")
    assert await sockets.call(MEMO, "read", "color") == (None, "blue")
    # The socket never replaced the browser's session.
    assert await browser.get("visits") == 1


async def test_concurrent_http_and_socket_writes_to_different_keys(
    browser: Browser, sockets: Sockets, daphne_server: Server
) -> None:
    """
    A socket's save reads and writes the stored session under the row's
    lock, writing only its own key, so it never undoes a page's write. The
    other way round is Django's: a request saves every key it loaded, so
    one that read the session before the socket saved puts back the
    socket's previous value.
    """
    await browser.visit()
    await sockets.connect(daphne_server, MEMO, cookie=browser.cookie)
    assert await sockets.call(MEMO, "write", "from_socket", 0) == (None, True)
    previous = 0
    for turn in range(1, 21):
        _, socket_done = await asyncio.gather(
            browser.set("from_http", turn), sockets.call(MEMO, "write", "from_socket", turn)
        )
        assert socket_done == (None, True)
        assert await browser.get("from_http") == turn
        from_socket = await browser.get("from_socket")
        assert from_socket in (previous, turn)
        previous = from_socket
    # Once the race is over, one write on each side: both stay.
    await browser.set("from_http", "final")
    assert await sockets.call(MEMO, "write", "from_socket", "final") == (None, True)
    assert await browser.get("from_http") == "final"
    assert await browser.get("from_socket") == "final"
    assert await sockets.call(MEMO, "read", "from_http") == (None, "final")
    assert await browser.get("visits") == 1


async def test_logout_ends_every_namespace_of_the_connection(
    browser: Browser, sockets: Sockets, daphne_server: Server, username: str
) -> None:
    await browser.login(username)
    cookie = browser.cookie
    await sockets.connect(daphne_server, MEMO, SNAPSHOT, cookie=cookie)
    assert (await sockets.received(MEMO, "info"))[0] == {"count": 0, "user": username}
    assert await sockets.call(SNAPSHOT, "read", "_auth_user_id") == (None, str(await user_id(username)))
    await browser.logout()
    # At once, not at the sockets' next event.
    await sockets.ended(MEMO, SNAPSHOT)
    again = Sockets()
    try:
        assert await again.refusal(daphne_server, MEMO, cookie=cookie) == {"message": "session required", "data": {"code": "session_required"}}
    finally:
        await again.close()


async def test_expired_session_ends_the_socket_at_its_next_event(
    browser: Browser, sockets: Sockets, daphne_server: Server
) -> None:
    await browser.visit()
    await sockets.connect(daphne_server, MEMO, SNAPSHOT, cookie=browser.cookie)
    assert await sockets.call(MEMO, "read", "visits") == (None, 1)
    # The session runs out in the store, with no logout or deletion to tell anyone.
    expire = Session.objects.filter(session_key=browser.session_key).update
    assert await sync_to_async(expire)(expire_date=datetime.now(timezone.utc) - timedelta(seconds=1)) == 1
    assert await sockets.call(MEMO, "read", "visits") == (SESSION_EXPIRED, None)
    await sockets.ended(MEMO, SNAPSHOT)


@pytest.mark.node
@requires_node
def test_logout_seen_by_socket_io_client(daphne_server: Server, username: str) -> None:
    steps = {line["step"]: line for line in run_node("sessions.mjs", "logout", daphne_server.url, username, PASSWORD)}
    assert steps["login"]["cookie_cycled"] is True
    assert steps["connected"]["same_manager"] is True
    assert steps["info"]["args"] == [{"count": 0, "user": username}]
    assert steps["write"]["reply"] == [None, True]
    assert steps["http_read"]["value"] == "green"
    for namespace in (MEMO, SNAPSHOT):
        assert steps["ended"]["history"][namespace] == [
            {"event": "session_expired", "args": []},
            {"event": "disconnect", "args": ["io server disconnect"]},
        ]


async def test_anonymous_socket_creates_no_session(sockets: Sockets, daphne_server: Server) -> None:
    before = await session_count()
    await sockets.connect(daphne_server, ECHO)
    assert (await sockets.received(ECHO, "hello"))[0]["channel"] == ECHO
    for number in range(3):
        assert await sockets.call(ECHO, "echo", number) == (None, [number])
    await sockets.close()
    assert await session_count() == before
    refused = Sockets()
    try:
        assert await refused.refusal(daphne_server, MEMO) == {"message": "session required", "data": {"code": "session_required"}}
    finally:
        await refused.close()
    assert await session_count() == before


async def test_login_required(browser: Browser, daphne_server: Server, username: str) -> None:
    await browser.visit()
    anonymous = browser.cookie
    refused = Sockets()
    try:
        assert await refused.refusal(daphne_server, PRIVATE, cookie=anonymous) == {"message": "login required", "data": {"code": "login_required"}}
    finally:
        await refused.close()

    await browser.login(username)
    assert browser.cookie != anonymous, "login() must cycle the session key"
    member = Sockets()
    try:
        await member.connect(daphne_server, PRIVATE, MEMO, cookie=browser.cookie)
        assert await member.received(PRIVATE, "welcome") == (username,)
        # The session's data came along with the new key.
        assert await member.call(MEMO, "read", "visits") == (None, 1)
    finally:
        await member.close()

    # The key from before the login was deleted with it.
    stale = Sockets()
    try:
        assert await stale.refusal(daphne_server, PRIVATE, cookie=anonymous) == {"message": "session required", "data": {"code": "session_required"}}
    finally:
        await stale.close()


async def test_session_of_a_deleted_user_is_anonymous(browser: Browser, daphne_server: Server) -> None:
    username = await sync_to_async(new_user)()
    await browser.login(username)
    await sync_to_async(lambda: User.objects.filter(username=username).delete())()
    refused = Sockets()
    try:
        assert await refused.refusal(daphne_server, PRIVATE, cookie=browser.cookie) == {"message": "login required", "data": {"code": "login_required"}}
    finally:
        await refused.close()
    # The session itself lives on, without a user.
    anonymous = Sockets()
    try:
        await anonymous.connect(daphne_server, MEMO, cookie=browser.cookie)
        assert (await anonymous.received(MEMO, "info"))[0]["user"] == "AnonymousUser"
    finally:
        await anonymous.close()


@pytest.mark.parametrize("forgery", ["forged", "tampered"])
async def test_forged_or_tampered_cookie_is_no_session(browser: Browser, daphne_server: Server, forgery: str) -> None:
    if forgery == "forged":
        key = "x" * 32
    else:
        await browser.visit()
        key = tampered(browser.session_key)
    before = await session_count()
    refused = Sockets()
    try:
        assert await refused.refusal(daphne_server, MEMO, cookie=session_cookie(key)) == {"message": "session required", "data": {"code": "session_required"}}
    finally:
        await refused.close()
    # A channel that needs no session takes the socket, without one.
    admitted = Sockets()
    try:
        await admitted.connect(daphne_server, ECHO, cookie=session_cookie(key))
        assert await admitted.call(ECHO, "echo", "still here") == (None, ["still here"])
    finally:
        await admitted.close()
    assert await session_count() == before
    assert not await sync_to_async(Session.objects.filter(session_key=key).exists)()


# -- other session backends, each on a server of its own --------------------


@pytest.fixture(scope="module", params=["cache", "cached_db"])
def cache_backend_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Server]]:
    """
    The test project on daphne with sessions in a file-based cache, alone
    (``cache``) or in front of the database (``cached_db``): the backend's
    name, the cache's directory and the server.
    """
    cache = tmp_path_factory.mktemp(f"cache-{request.param}")
    settings_module = f"tests.project.settings_{request.param}"
    with run_server(settings=settings_module, env={"RAIN_WS_TEST_CACHE": str(cache)}) as server:
        yield request.param, cache, server


async def test_cache_backends_share_writes_and_logout(cache_backend_server: tuple[str, Path, Server]) -> None:
    backend, _, server = cache_backend_server
    browser = Browser(server)
    sockets = Sockets()
    try:
        await browser.visit()
        in_database = await sync_to_async(Session.objects.filter(session_key=browser.session_key).exists)()
        assert in_database is (backend == "cached_db")
        await sockets.connect(server, MEMO, SNAPSHOT, cookie=browser.cookie)
        assert await sockets.call(MEMO, "write", "color", "red") == (None, True)
        assert await browser.get("color") == "red"
        await browser.set("color", "blue")
        assert await sockets.call(MEMO, "read", "color") == (None, "blue")
        await browser.logout()
        await sockets.ended(MEMO, SNAPSHOT)
    finally:
        await sockets.close()
        await browser.close()


async def test_session_evicted_from_the_cache_ends_the_socket(cache_backend_server: tuple[str, Path, Server]) -> None:
    backend, cache, server = cache_backend_server
    browser = Browser(server)
    sockets = Sockets()
    try:
        await browser.visit()
        await sockets.connect(server, MEMO, SNAPSHOT, cookie=browser.cookie)
        assert await sockets.call(MEMO, "read", "visits") == (None, 1)
        # Gone from the cache (and, for cached_db, from the database), as
        # after an eviction or a restart: nothing tells the server.
        for entry in cache.glob("*.djcache"):
            entry.unlink()
        if backend == "cached_db":
            await sync_to_async(Session.objects.filter(session_key=browser.session_key).update)(
                expire_date=datetime.now(timezone.utc) - timedelta(seconds=1)
            )
        assert await sockets.call(MEMO, "read", "visits") == (SESSION_EXPIRED, None)
        await sockets.ended(MEMO, SNAPSHOT)
    finally:
        await sockets.close()
        await browser.close()


# -- concurrent saves on every backend a socket can write --------------------

CONCURRENT_SOCKETS = 5
WRITES_EACH = 100


@pytest.fixture(params=["db", "cached_db", "cache", "cache_locmem", "file"])
def writable_backend_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """
    The test project on daphne with each session backend a socket can write:
    ``cache`` is the file-based cache of ``settings_cache``, ``cache_locmem``
    a local-memory cache (one process, read back over HTTP).
    """
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    env = {"RAIN_WS_TEST_CACHE": str(tmp_path / "cache"), "RAIN_WS_TEST_SESSION_FILES": str(sessions)}
    settings_module = "tests.project.settings" if request.param == "db" else f"tests.project.settings_{request.param}"
    with run_server(settings=settings_module, env=env) as server:
        yield server


async def test_concurrent_socket_saves_lose_nothing(writable_backend_server: Server) -> None:
    """
    Sockets of one session each write their own key, all at once. Each save
    applies its key to the session as stored, under the backend's lock, so
    no save puts back another's older value: every key ends at its last
    value, and no write is refused.
    """
    server = writable_backend_server
    browser = Browser(server)
    sockets = [Sockets() for _ in range(CONCURRENT_SOCKETS)]
    try:
        await browser.visit()
        for each in sockets:
            await each.connect(server, MEMO, cookie=browser.cookie)

        async def write_all(each: Sockets, key: str) -> list[Any]:
            answers = [await each.call(MEMO, "write", key, value) for value in range(WRITES_EACH)]
            return [answer for answer in answers if answer != (None, True)]

        refused = await asyncio.gather(*(write_all(each, f"K{n}") for n, each in enumerate(sockets)))
        assert refused == [[]] * CONCURRENT_SOCKETS
        final = {f"K{n}": await browser.get(f"K{n}") for n in range(CONCURRENT_SOCKETS)}
        assert final == {f"K{n}": WRITES_EACH - 1 for n in range(CONCURRENT_SOCKETS)}
        assert await browser.get("visits") == 1
    finally:
        for each in sockets:
            await each.close()
        await browser.close()
    assert not records(server, "session store unavailable"), server.log()


async def test_cache_session_lock_not_had_gives_session_unavailable(tmp_path: Path) -> None:
    """
    A save that cannot lock its session within the wait (here the test
    holds the lock) writes nothing, and the event is acked with
    ``session_unavailable``; the socket stays, and saves once the lock is free.
    """
    with run_server(settings="tests.project.settings_cache", env={"RAIN_WS_TEST_CACHE": str(tmp_path)}) as server:
        browser = Browser(server)
        sockets = Sockets()
        try:
            await browser.visit()
            await sockets.connect(server, MEMO, cookie=browser.cookie)
            assert await sockets.call(MEMO, "write", "color", "red") == (None, True)
            path = lock_file(str(tmp_path), browser.session_key)
            descriptor = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                started = time.monotonic()
                assert await sockets.call(MEMO, "write", "color", "blue") == (SESSION_UNAVAILABLE, None)
                assert time.monotonic() - started >= LOCK_WAIT
                assert await sockets.call(MEMO, "read", "color") == (None, "red")
            finally:
                os.close(descriptor)
            assert await sockets.call(MEMO, "write", "color", "blue") == (None, True)
            assert await browser.get("color") == "blue"
        finally:
            await sockets.close()
            await browser.close()
        assert len(records(server, "session not saved: its lock")) == 1, server.log()
        assert len(records(server, "session store unavailable: SessionLockTimeout")) == 1, server.log()


@pytest.fixture(scope="module")
def signed_cookies_server() -> Iterator[Server]:
    with run_server(settings="tests.project.settings_signed_cookies") as server:
        yield server


async def test_signed_cookie_session_is_read_only_on_sockets(signed_cookies_server: Server) -> None:
    browser = Browser(signed_cookies_server)
    sockets = Sockets()
    try:
        await browser.set("color", "red")
        await sockets.connect(signed_cookies_server, MEMO, cookie=browser.cookie)
        assert await sockets.call(MEMO, "read", "color") == (None, "red")
        error, result = await sockets.call(MEMO, "write", "color", "green")
        assert result is None
        assert error["code"] == "session_read_only"
        assert "signed_cookies" in error["message"]
        assert await browser.get("color") == "red"

        # A page's change travels in its new cookie, which the open socket
        # never gets: it keeps the session as of its CONNECT.
        await browser.set("color", "blue")
        assert await sockets.call(MEMO, "read", "color") == (None, "red")
        fresh = Sockets()
        try:
            await fresh.connect(signed_cookies_server, MEMO, cookie=browser.cookie)
            assert await fresh.call(MEMO, "read", "color") == (None, "blue")
        finally:
            await fresh.close()
    finally:
        await sockets.close()
        await browser.close()


async def test_signed_cookie_logout(signed_cookies_server: Server) -> None:
    """
    A logout reaches the sockets that connected with the cookie being logged
    out, but the server cannot revoke a signed cookie: presented again, it
    is a live session until it expires.
    """
    browser = Browser(signed_cookies_server)
    sockets = Sockets()
    replayed = Sockets()
    try:
        await browser.set("color", "red")
        cookie = browser.cookie
        await sockets.connect(signed_cookies_server, MEMO, cookie=cookie)
        await browser.logout()
        assert browser.session_key is None, "logout deletes the cookie in the browser"
        await sockets.ended(MEMO)
        await replayed.connect(signed_cookies_server, MEMO, cookie=cookie)
        assert await replayed.call(MEMO, "read", "color") == (None, "red")
    finally:
        await replayed.close()
        await sockets.close()
        await browser.close()


async def test_signed_cookie_logout_misses_sockets_of_an_older_cookie(signed_cookies_server: Server) -> None:
    """
    Each change of a signed-cookie session is a new cookie: a logout names
    the newest, so a socket that connected with an older one is not ended.
    """
    browser = Browser(signed_cookies_server)
    sockets = Sockets()
    try:
        await browser.set("color", "red")
        await sockets.connect(signed_cookies_server, MEMO, cookie=browser.cookie)
        await browser.set("color", "blue")
        await browser.logout()
        assert await sockets.call(MEMO, "read", "color") == (None, "red")
        assert [event for event, _ in sockets.history(MEMO)] == ["info"]
    finally:
        await sockets.close()
        await browser.close()


async def test_tampered_signed_cookie_is_no_session(signed_cookies_server: Server) -> None:
    browser = Browser(signed_cookies_server)
    sockets = Sockets()
    try:
        await browser.set("color", "red")
        forgery = session_cookie(tampered(browser.session_key))
        assert await sockets.refusal(signed_cookies_server, MEMO, cookie=forgery) == {"message": "session required", "data": {"code": "session_required"}}
    finally:
        await sockets.close()
        await browser.close()


# -- a session store that fails ----------------------------------------------


@pytest.fixture
def lockable_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """
    The test project on a copy of the test database, whose SQLite file the
    test can lock, and which gives up on a lock after 0.2 s.
    """
    database = tmp_path / "db.sqlite3"
    shutil.copyfile(settings.DATABASES["default"]["NAME"], database)
    with run_server(settings="tests.project.settings_db_timeout", env={"RAIN_WS_TEST_DB": str(database)}) as server:
        yield server, database


class DatabaseLock:
    """
    A transaction holding a SQLite file's lock: ``IMMEDIATE`` lets other
    connections read but not write, ``EXCLUSIVE`` lets them do neither.
    """

    def __init__(self, database: Path, mode: str) -> None:
        self.connection = sqlite3.connect(database, isolation_level=None)
        self.mode = mode

    def __enter__(self) -> None:
        self.connection.execute(f"BEGIN {self.mode}")

    def __exit__(self, *exc_info: object) -> None:
        self.connection.execute("ROLLBACK")
        self.connection.close()


def records(server: Server, message: str) -> list[str]:
    """
    The server's log records starting with ``message``: the test project's
    rain_ws handler writes each as its bare text, one line per record.
    """
    return [line for line in server.log().splitlines() if line.startswith(message)]


async def test_failing_store_gives_error_acks_and_one_log_line(lockable_server: tuple[Server, Path]) -> None:
    server, database = lockable_server
    browser = Browser(server)
    sockets = Sockets()
    late = Sockets()
    try:
        await browser.visit()
        await sockets.connect(server, MEMO, cookie=browser.cookie)
        assert await sockets.call(MEMO, "write", "color", "red") == (None, True)
        with DatabaseLock(database, "IMMEDIATE"):
            # The session loads, but the listener's change cannot be saved.
            assert await sockets.call(MEMO, "read", "color") == (None, "red")
            assert await sockets.call(MEMO, "write", "color", "blue") == (SESSION_UNAVAILABLE, None)
        with DatabaseLock(database, "EXCLUSIVE"):
            for _ in range(3):
                assert await sockets.call(MEMO, "read", "color") == (SESSION_UNAVAILABLE, None)
            assert await sockets.call(MEMO, "write", "color", "blue") == (SESSION_UNAVAILABLE, None)
            assert await late.refusal(server, MEMO, cookie=browser.cookie) == {"message": "session store unavailable", "data": {"code": "store_unavailable"}}
        # The socket was not ended, and works again with the store.
        assert await sockets.call(MEMO, "read", "color") == (None, "red")
        assert await sockets.call(MEMO, "write", "color", "blue") == (None, True)
        assert await browser.get("color") == "blue"
    finally:
        await late.close()
        await sockets.close()
        await browser.close()
    failures = records(server, "session store unavailable")
    assert len(failures) == 1, server.log()
    assert "database is locked" in failures[0]
    # The same record through daphne's root handler shows its level.
    assert server.log().count("ERROR    session store unavailable") == 1
    assert len(records(server, "session store available again")) == 1


async def test_store_failing_again_after_recovering_is_logged_again(lockable_server: tuple[Server, Path]) -> None:
    server, database = lockable_server
    browser = Browser(server)
    try:
        await browser.visit()
        for _ in range(2):
            refused = Sockets()
            try:
                with DatabaseLock(database, "EXCLUSIVE"):
                    assert await refused.refusal(server, SNAPSHOT, cookie=browser.cookie) == {
                        "message": "session store unavailable",
                        "data": {"code": "store_unavailable"},
                    }
            finally:
                await refused.close()
            admitted = Sockets()
            try:
                await admitted.connect(server, SNAPSHOT, cookie=browser.cookie)
                assert await admitted.call(SNAPSHOT, "read", "visits") == (None, 1)
            finally:
                await admitted.close()
    finally:
        await browser.close()
    assert len(records(server, "session store unavailable")) == 2, server.log()
