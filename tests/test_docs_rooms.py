"""
docs/rooms.rst: its chat component, its ``close_room`` view and the page
that posts to it (tests/project/docs_chat, shown by the page), on a real
daphne. Rooms work as shown; the view answers 403 without the CSRF token
and broadcasts with it; in a browser, the page's fetch() carries the token
and its socket hears ``room-closed``.
"""

from __future__ import annotations

import asyncio
import http.cookies
import re
import urllib.error
import urllib.request

import pytest
import socketio

from tests.support.browser import chromium, requires_browser
from tests.support.recording import WAIT
from tests.support.servers import run_server

CHANNEL = "/chat/1.0/chat"


@pytest.fixture(scope="module")
def server():
    with run_server(settings="tests.project.settings_docs_rooms") as server:
        yield server


def load_page(server, room: str) -> tuple[dict[str, str], str]:
    """The room's page as a browser loads it: its cookies and its form's CSRF token."""
    with urllib.request.urlopen(f"{server.url}/chat/{room}/", timeout=WAIT) as response:
        cookies = http.cookies.SimpleCookie()
        for header in response.headers.get_all("Set-Cookie"):
            cookies.load(header)
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    return {name: morsel.value for name, morsel in cookies.items()}, token


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def post(url: str, cookies: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, method="POST", headers={"Cookie": cookie_header(cookies), **headers})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Member:
    """A python-socketio client on the chat channel, with a page's session."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue = asyncio.Queue()
        for event in ("room-message", "room-closed"):
            self.sio.on(event, lambda data, event=event: self.events.put_nowait((event, data)), namespace=CHANNEL)

    async def connect(self, server, cookies: dict[str, str]) -> None:
        await self.sio.connect(
            server.url,
            namespaces=[CHANNEL],
            transports=["websocket"],
            headers={"Cookie": cookie_header(cookies)},
            wait_timeout=WAIT,
        )

    async def call(self, event, *args):
        return await self.sio.call(event, args, namespace=CHANNEL, timeout=WAIT)

    async def next_event(self):
        return await asyncio.wait_for(self.events.get(), WAIT)


async def test_rooms_as_the_page_shows(server):
    first, second = Member(), Member()
    for member in (first, second):
        cookies, _ = await asyncio.to_thread(load_page, server, "lobby")
        await member.connect(server, cookies)
    try:
        assert await first.call("say", "lobby", "too early") == (
            {"message": "join the room first", "code": "not_in_room"},
            None,
        )
        assert await first.call("join", "lobby") == (None, {"rooms": ["lobby"]})
        assert await second.call("join", "lobby") == (None, {"rooms": ["lobby"]})
        assert await first.call("say", "lobby", "hello") == (None, {"sent": True})
        event, data = await second.next_event()
        assert (event, data["room"], data["text"]) == ("room-message", "lobby", "hello")
        assert first.events.empty()  # the sender is not among the receivers
        assert await second.call("leave", "lobby") == (None, {"rooms": []})
    finally:
        await first.sio.disconnect()
        await second.sio.disconnect()


async def test_close_room_needs_the_csrf_token(server):
    cookies, token = await asyncio.to_thread(load_page, server, "kitchen")
    member = Member()
    await member.connect(server, cookies)
    try:
        assert await member.call("join", "kitchen") == (None, {"rooms": ["kitchen"]})
        url = f"{server.url}/chat/kitchen/close/"
        status, body = await asyncio.to_thread(post, url, cookies, {"Origin": server.url})
        assert status == 403 and "CSRF" in body
        assert member.events.empty()
        status, body = await asyncio.to_thread(post, url, cookies, {"Origin": server.url, "X-CSRFToken": token})
        assert (status, body) == (200, '{"closed": "kitchen"}')
        assert await member.next_event() == ("room-closed", {"room": "kitchen"})
    finally:
        await member.sio.disconnect()


@requires_browser
async def test_the_page_closes_its_room_in_a_browser(server):
    async with chromium() as browser:
        page = await browser.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"{server.url}/chat/garden/")
        await page.wait_for_function("document.getElementById('news').textContent === 'joined'")
        await page.click("button")
        await page.wait_for_function("document.getElementById('news').textContent === 'garden is closed'")
        assert errors == []
