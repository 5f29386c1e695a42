"""
The example's notes component on a real server, driven as a browser tab and
its socket would be: the notes are for users (the login page, or the sign-up
form), the notes a socket saves are in the session the page renders, a new
login replaces the session's key, and logging out ends the session, its
notes and the socket.
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
INVALID_NOTE = {"message": "a note is a string of 1 to 1000 characters", "code": "invalid"}


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
    """The notes in the page's list, in order."""
    listed = re.search(r'<ol class="note-list" data-itemid="list">(.*?)</ol>', page, re.S)
    assert listed is not None, "the page has no list of notes"
    return re.findall(r'<p class="note-text">(.*?)</p>', listed.group(1), re.S)


def logged_in(server: Server) -> Browser:
    """A browser logged in as the example's user, on its notes page."""
    browser = Browser(server)
    _, form = browser.get("/accounts/login/")
    url, page = browser.submit("/accounts/login/", form, {"username": USERNAME, "password": PASSWORD})
    assert url == f"{server.url}/notes/"
    assert f'<span class="account-name" data-testid="account-name">{USERNAME}</span>' in page
    return browser


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
    browser = logged_in(example_server)
    _, page = browser.get("/notes/")
    assert listed_notes(page) == []
    assert CHANNEL in page
    assert "notes/js/index.js" in page
    async with notes_socket(example_server, browser.cookie()) as (client, events):
        assert await next_event(events) == ("info", {"count": 0})
        assert await save(client, "first") == (None, {"count": 1})
        # A reload renders the session the socket saved.
        assert listed_notes(browser.get("/notes/")[1]) == ["first"]
        assert await save(client, "<b>second</b>") == (None, {"count": 2})
        assert await client.call("list", namespace=CHANNEL, timeout=5) == (
            None,
            {"notes": ["first", "<b>second</b>"]},
        )
    assert listed_notes(browser.get("/notes/")[1]) == ["first", "&lt;b&gt;second&lt;/b&gt;"]
    # A new socket of the same tab starts from the saved notes.
    async with notes_socket(example_server, browser.cookie()) as (_, events):
        assert await next_event(events) == ("info", {"count": 2})


async def test_the_notes_are_for_users(example_server: Server) -> None:
    browser = Browser(example_server)
    url, page = browser.get("/notes/")
    assert url == f"{example_server.url}/accounts/login/?next=/notes/"
    assert "Log in" in page
    # The login page gives no session; the chat page does, and with it the
    # notes channel still wants a user.
    assert browser.session_id() is None
    browser.get("/")
    with pytest.raises(socketio.exceptions.ConnectionError):
        async with notes_socket(example_server, browser.cookie()):
            pass


async def test_logout_ends_the_notes_and_the_socket(example_server: Server) -> None:
    browser = logged_in(example_server)
    async with notes_socket(example_server, browser.cookie()) as (client, events):
        assert await next_event(events) == ("info", {"count": 0})
        assert await save(client, "first") == (None, {"count": 1})
        _, page = browser.get("/notes/")
        assert listed_notes(page) == ["first"]

        url, page = browser.submit("/accounts/logout/", page)
        assert url == f"{example_server.url}/accounts/login/"
        assert browser.session_id() is None
        await expect_session_expired(client, events)
    # The notes went with the session.
    browser = logged_in(example_server)
    assert listed_notes(browser.get("/notes/")[1]) == []


async def test_signup_makes_a_user_and_logs_in(example_server: Server) -> None:
    browser = Browser(example_server)
    _, form = browser.get("/accounts/signup/")
    fields = {"username": "newcomer", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
    url, page = browser.submit("/accounts/signup/", form, {**fields, "password2": "something else"})
    assert url == f"{example_server.url}/accounts/signup/"
    assert "didn" in page  # "The two password fields didn’t match."
    url, page = browser.submit("/accounts/signup/", page, fields)
    assert url == f"{example_server.url}/notes/"
    assert '<span class="account-name" data-testid="account-name">newcomer</span>' in page
    async with notes_socket(example_server, browser.cookie()) as (client, events):
        assert await next_event(events) == ("info", {"count": 0})
        assert await save(client, "mine") == (None, {"count": 1})
    assert listed_notes(browser.get("/notes/")[1]) == ["mine"]


async def test_save_list_and_remove_check_their_input(example_server: Server) -> None:
    browser = logged_in(example_server)
    async with notes_socket(example_server, browser.cookie()) as (client, events):
        assert await next_event(events) == ("info", {"count": 0})

        async def call(event: str, argument: Any) -> Any:
            return await client.call(event, argument, namespace=CHANNEL, timeout=5)

        for bad_note in ("", "   ", 1, ["a"], "x" * 1001):
            assert await call("save", bad_note) == (INVALID_NOTE, None)
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
