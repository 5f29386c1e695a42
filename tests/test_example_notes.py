"""
The example's notes component on a real server, driven as a browser tab and
its socket would be: the notes a socket saves are in the session the page
renders, logging in keeps them, and logging out ends the session, its notes
and the socket.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.support.servers import ROOT, Server, run_server
from tests.test_example_project import EXAMPLE, example_env

CHANNEL = "/notes/1.0/notes"
USERNAME = "ada"
PASSWORD = "notes-example-password"
INVALID_LIST = {"message": "notes must be a list of strings", "code": "invalid"}
INVALID_INDEX = {"message": "no note has this index", "code": "invalid"}


def manage(database: Path, *args: str, env: dict[str, str] | None = None) -> None:
    """Run a management command of the example against ``database``."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env={**example_env(database), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """
    The example project on daphne, with a freshly migrated database holding
    one user, made as the notes page says: ``manage.py createsuperuser``.
    """
    database = tmp_path_factory.mktemp("notes") / "db.sqlite3"
    manage(database, "migrate", "--noinput")
    manage(
        database,
        "createsuperuser",
        "--noinput",
        "--username",
        USERNAME,
        "--email",
        "ada@example.com",
        env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD},
    )
    with run_server(
        settings="mysite.settings",
        application="mysite.asgi:application",
        env={"PYTHONPATH": f"{EXAMPLE}{os.pathsep}{ROOT}", "RAIN_WS_EXAMPLE_DB": str(database)},
    ) as server:
        yield server


class Browser:
    """An HTTP client that keeps its cookies and follows redirects, as a browser tab does."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[str, str]:
        """The final URL and the page."""
        with self.opener.open(self.server.url + path, timeout=10) as response:
            return response.url, response.read().decode()

    def submit(self, path: str, page: str, fields: dict[str, str] | None = None) -> tuple[str, str]:
        """POST a form of ``page`` to ``path``, with the CSRF token the page holds."""
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None, "the page has no CSRF token"
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), **(fields or {})}).encode()
        with self.opener.open(self.server.url + path, data=body, timeout=10) as response:
            return response.url, response.read().decode()

    def cookie(self) -> str:
        """The Cookie header the browser sends this site, the WebSocket handshake included."""
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.jar)

    def session_id(self) -> str | None:
        return next((cookie.value for cookie in self.jar if cookie.name == "sessionid"), None)


def listed_notes(page: str) -> list[str]:
    """The notes in the page's table, in order, checking their indexes."""
    rows = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td></tr>", page)
    assert [int(index) for index, _ in rows] == list(range(len(rows)))
    return [note for _, note in rows]


@asynccontextmanager
async def notes_socket(
    server: Server, cookie: str
) -> AsyncIterator[tuple[socketio.AsyncClient, asyncio.Queue]]:
    """
    A python-socketio client on the notes channel with ``cookie``, and the
    queue of what the server sent it: ``info``, ``session_expired`` and the
    namespace's disconnect, as ``(name, payload)``.
    """
    client = socketio.AsyncClient(reconnection=False)
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    client.on("info", lambda data: events.put_nowait(("info", data)), namespace=CHANNEL)
    client.on(
        "session_expired", lambda *args: events.put_nowait(("session_expired", list(args))), namespace=CHANNEL
    )
    client.on("disconnect", lambda reason: events.put_nowait(("disconnect", reason)), namespace=CHANNEL)
    await client.connect(
        server.url, namespaces=[CHANNEL], transports=["websocket"], headers={"Cookie": cookie}, wait_timeout=5
    )
    try:
        yield client, events
    finally:
        await client.disconnect()


async def next_event(events: asyncio.Queue) -> tuple[str, Any]:
    return await asyncio.wait_for(events.get(), 5)


async def save(client: socketio.AsyncClient, note: Any) -> Any:
    return await client.call("save", note, namespace=CHANNEL, timeout=5)


async def expect_session_expired(client: socketio.AsyncClient, events: asyncio.Queue) -> None:
    """
    The session ended through Django (a logout, or login replacing the key):
    the socket hears it at once, without emitting anything, as a
    ``session_expired`` event and a server disconnect.
    """
    assert await next_event(events) == ("session_expired", [])
    assert await next_event(events) == ("disconnect", "server disconnect")


async def test_notes_saved_over_the_socket_are_on_the_page(example_server: Server) -> None:
    browser = Browser(example_server)
    _, page = browser.get("/notes/")
    assert listed_notes(page) == []
    assert CHANNEL in page
    assert "<script" not in page
    async with notes_socket(example_server, browser.cookie()) as (client, events):
        assert await next_event(events) == ("info", {"count": 0})
        assert await save(client, "first") == (None, {"count": 1})
        # A reload renders the session the socket saved.
        assert listed_notes(browser.get("/notes/")[1]) == ["first"]
        assert await save(client, "<b>second</b>") == (None, {"count": 2})
    assert listed_notes(browser.get("/notes/")[1]) == ["first", "&lt;b&gt;second&lt;/b&gt;"]
    # A new socket of the same tab starts from the saved notes.
    async with notes_socket(example_server, browser.cookie()) as (_, events):
        assert await next_event(events) == ("info", {"count": 2})


async def test_login_keeps_the_notes_and_logout_ends_them(example_server: Server) -> None:
    browser = Browser(example_server)
    _, page = browser.get("/notes/")
    assert "Not logged in" in page
    anonymous_key = browser.session_id()
    async with notes_socket(example_server, browser.cookie()) as (before_login, events_before):
        assert await next_event(events_before) == ("info", {"count": 0})
        assert await save(before_login, "first") == (None, {"count": 1})
        assert listed_notes(browser.get("/notes/")[1]) == ["first"]

        _, form = browser.get("/accounts/login/")
        url, page = browser.submit("/accounts/login/", form, {"username": USERNAME, "password": PASSWORD})
        assert url == f"{example_server.url}/notes/"
        assert f"Logged in as <strong>{USERNAME}</strong>" in page
        assert listed_notes(page) == ["first"]
        # Django's login gives the session a new key: the socket opened on the
        # old one has lost its session.
        assert browser.session_id() not in (None, anonymous_key)
        await expect_session_expired(before_login, events_before)

    async with notes_socket(example_server, browser.cookie()) as (client, events):
        assert await next_event(events) == ("info", {"count": 1})
        assert await save(client, "second") == (None, {"count": 2})
        _, page = browser.get("/notes/")
        assert listed_notes(page) == ["first", "second"]

        url, page = browser.submit("/accounts/logout/", page)
        assert url == f"{example_server.url}/notes/"
        assert "Not logged in" in page
        assert listed_notes(page) == []
        await expect_session_expired(client, events)
    assert listed_notes(browser.get("/notes/")[1]) == []


async def test_save_list_and_remove_check_their_input(example_server: Server) -> None:
    browser = Browser(example_server)
    browser.get("/notes/")
    async with notes_socket(example_server, browser.cookie()) as (client, events):
        assert await next_event(events) == ("info", {"count": 0})

        async def call(event: str, argument: Any) -> Any:
            return await client.call(event, argument, namespace=CHANNEL, timeout=5)

        assert await call("save-list", ["a", "b", "c"]) == (None, {"count": 3})
        for bad_list in ("a", ["a", 1], {"notes": ["a"]}):
            assert await call("save-list", bad_list) == (INVALID_LIST, None)
        assert await call("remove", 1) == (None, {"count": 2})
        for bad_index in (2, -1, True, "0", 0.0):
            assert await call("remove", bad_index) == (INVALID_INDEX, None)
        # Refused events saved nothing.
        assert listed_notes(browser.get("/notes/")[1]) == ["a", "c"]
        assert await call("save-list", []) == (None, {"count": 0})
    assert listed_notes(browser.get("/notes/")[1]) == []
