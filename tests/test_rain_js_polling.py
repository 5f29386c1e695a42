"""
rain.js on HTTP long-polling, in headless Chromium against a real daphne
serving the test project (``tests.project.browser``: sessions of 6 s, pings
every second). The pages are served through a proxy written here that
forwards HTTP but refuses every WebSocket handshake, as a proxy that does not
pass ``Upgrade`` does: the runtime falls back to long-polling, remembers it
for the page session, and keeps its reconnect and session rules.

Tests wait for what they expect (``until``, ``page_until``); the only fixed
wait watches for a retry that must not come.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio

from tests.support.browser import OPEN_COUNTER, Tab, key, open_tab, page_until, requires_browser
from tests.support.recording import until
from tests.support.servers import Server, run_server

pytestmark = [pytest.mark.browser, requires_browser, pytest.mark.asyncio(loop_scope="module")]

#: Twice the longest first retry of rain.js (500 ms x at most 1.5 of jitter).
NO_RETRY = 1.5

#: Headers of one hop, which a proxy does not forward.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "content-length",
}

#: The sessionStorage key under which rain.js remembers the fallback.
REMEMBERED = "rain_ws.transport {origin}/socket.io/"


class NoUpgradeProxy:
    """
    An HTTP proxy on 127.0.0.1 in front of ``upstream`` that answers every
    WebSocket handshake 400 and records what passed: the handshakes it
    refused, and the long-polling requests (method, query, body).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refused = 0
        self.polls: list[tuple[str, str, str]] = []
        #: Answer the next long-polling request of a session as a server that forgot it.
        self.forget_next = False
        self.url = ""

    async def forward(self, request: Any) -> Any:
        from aiohttp import web

        if "websocket" in request.headers.get("Upgrade", "").lower():
            self.refused += 1
            return web.Response(status=400, text="this proxy does not pass Upgrade")
        body = await request.read()
        if "transport=polling" in request.query_string:
            self.polls.append((request.method, request.query_string, body.decode()))
            if self.forget_next and "sid=" in request.query_string:
                self.forget_next = False
                return web.json_response({"code": 1, "message": "Session ID unknown"}, status=400)
        headers = {name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP}
        async with self.client.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body, allow_redirects=False
        ) as response:
            content = await response.read()
            kept = [(n, v) for n, v in response.headers.items() if n.lower() not in HOP_BY_HOP | {"content-encoding"}]
            answer = web.Response(status=response.status, body=content)
            for name, value in kept:
                answer.headers.add(name, value)  # Set-Cookie may come more than once
            return answer

    def polling_posts(self) -> list[str]:
        """The packets the page posted, one by one."""
        return [packet for method, _, body in self.polls if method == "POST" for packet in body.split("\x1e")]

    def handshakes(self) -> int:
        return sum(1 for method, query, _ in self.polls if method == "GET" and "sid=" not in query)


@asynccontextmanager
async def no_upgrade_proxy(upstream: str) -> AsyncIterator[NoUpgradeProxy]:
    import aiohttp
    from aiohttp import web

    proxy = NoUpgradeProxy(upstream)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.forward)
    runner = web.AppRunner(app)
    await runner.setup()
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    proxy.url = "http://127.0.0.1:%d" % listening.getsockname()[1]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as proxy.client:
        await web.SockSite(runner, listening).start()
        try:
            yield proxy
        finally:
            await runner.cleanup()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server(settings="tests.project.browser.settings") as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def proxy(server: Server) -> AsyncIterator[NoUpgradeProxy]:
    async with no_upgrade_proxy(server.url) as proxy:
        yield proxy


@asynccontextmanager
async def tabs(browser: Any, url: str, count: int = 1) -> AsyncIterator[list[Tab]]:
    """Fresh pages, each in a context of its own; no uncaught errors allowed."""
    opened = [await open_tab(browser, url) for _ in range(count)]
    try:
        yield opened
    finally:
        for tab in opened:
            await tab.page.context.close()
    for tab in opened:
        assert tab.uncaught == []


#: JavaScript that opens the echo channel as window.echo, and waits for its hello.
OPEN_ECHO = """async () => {
    const echo = window.echo = rain.context("echo", "2.0").messaging.getSocket("echo");
    const hello = await new Promise((resolve) => echo.on("hello", resolve));
    return {hello: hello.message, transport: echo.transport};
}"""

BINARY_ROUND_TRIP = """async () => {
    const bytes = (value) => value instanceof ArrayBuffer ? Array.from(new Uint8Array(value)) : value;
    const reply = await echo.emitWithAck(
        "echo",
        new Uint8Array([0, 1, 2, 254, 255]),
        {nested: [new Uint16Array([513]).buffer, "text"]},
        new Blob([new Uint8Array([7, 8])]),
        new Uint8Array(0),
    );
    return [bytes(reply[0]), [bytes(reply[1].nested[0]), reply[1].nested[1]], bytes(reply[2]), bytes(reply[3])];
}"""


async def remembered(tab: Tab) -> Any:
    return await tab.page.evaluate("(key) => sessionStorage.getItem(key)", REMEMBERED.format(origin=tab_origin(tab)))


def tab_origin(tab: Tab) -> str:
    return "/".join(tab.page.url.split("/")[:3])


async def test_a_websocket_that_opens_is_kept(browser: Any, server: Server) -> None:
    async with tabs(browser, server.url) as [tab]:
        polls: list[str] = []
        tab.page.on("request", lambda r: polls.append(r.url) if "transport=polling" in r.url else None)
        await tab.page.goto("/browser/page/")
        assert await tab.page.evaluate(OPEN_ECHO) == {"hello": "Hello Sockets!", "transport": "websocket"}
        assert await tab.page.evaluate("() => echo.emitWithAck('echo', 1)") == [1]
        assert await remembered(tab) is None
        assert polls == []
        assert len(tab.websockets) == 1


async def test_falls_back_to_long_polling_and_remembers_it(browser: Any, proxy: NoUpgradeProxy) -> None:
    async with tabs(browser, proxy.url) as [tab]:
        await tab.page.goto("/browser/page/")
        assert await tab.page.evaluate(OPEN_ECHO) == {"hello": "Hello Sockets!", "transport": "polling"}
        assert proxy.refused == 1 and len(tab.websockets) == 1
        assert await tab.page.evaluate("() => echo.emitWithAck('echo', 1, 'two', {three: [3]})") == [
            1, "two", {"three": [3]},
        ]
        assert await tab.page.evaluate(BINARY_ROUND_TRIP) == [[0, 1, 2, 254, 255], [[1, 2], "text"], [7, 8], []]
        # Binary goes up as "b" and base64 (the Blob too).
        assert "bBwg=" in proxy.polling_posts()
        # The server's pings ("2", every second) are answered by POST.
        await until(lambda: "3" in proxy.polling_posts(), "a pong by POST")
        assert await remembered(tab) == "polling"
        assert tab.errors_with("rain:") == []

        # The next load of the page goes straight to long-polling.
        await tab.page.reload()
        assert await tab.page.evaluate(OPEN_ECHO) == {"hello": "Hello Sockets!", "transport": "polling"}
        assert await tab.page.evaluate("() => echo.emitWithAck('echo', 'again')") == ["again"]
        assert proxy.refused == 1 and len(tab.websockets) == 1
        assert proxy.handshakes() == 2


async def test_posts_stay_within_max_payload(browser: Any, proxy: NoUpgradeProxy) -> None:
    async with tabs(browser, proxy.url) as [tab]:
        await tab.page.goto("/browser/page/")
        result = await tab.page.evaluate(
            """async () => {
                const echo = rain.context("echo", "2.0").messaging.getSocket("echo");
                // Sent together once connected: 3 x 400 kB of base64 is over the 1 MB maxPayload.
                const sizes = await Promise.all([1, 2, 3].map(async (n) => {
                    const [reply] = await echo.emitWithAck("echo", new Uint8Array(300000).fill(n));
                    return [reply.byteLength, new Uint8Array(reply)[0]];
                }));
                let refused;
                try {
                    echo.emit("echo", new Uint8Array(800000)); // 800 kB, over 1 MB as base64
                } catch (error) {
                    refused = error.name;
                }
                return {sizes, refused, transport: echo.transport};
            }"""
        )
        assert result == {
            "sizes": [[300000, 1], [300000, 2], [300000, 3]], "refused": "RangeError", "transport": "polling",
        }
        bodies = [body for method, _, body in proxy.polls if method == "POST" and len(body) > 300000]
        assert len(bodies) >= 2 and max(map(len, bodies)) <= 1_000_000


async def test_a_room_message_between_two_long_polling_pages(browser: Any, proxy: NoUpgradeProxy) -> None:
    room = f"room-{key()}"
    async with tabs(browser, proxy.url, 2) as pages:
        for tab in pages:
            await tab.page.goto("/browser/page/")
            joined = await tab.page.evaluate(
                """async (name) => {
                    window.said = [];
                    window.room = rain.context("rooms", "1.0").messaging.getSocket("room");
                    room.on("said", (text, sid) => said.push([text, sid]));
                    return [await room.emitWithAck("join", name), room.transport];
                }""",
                room,
            )
            assert joined[1] == "polling" and room in joined[0]
        speaker, listener = pages
        assert await speaker.page.evaluate("(name) => room.emitWithAck('say', name, 'over HTTP')", room) is True
        await page_until(listener, "() => said.length === 1", "the room message on the other page")
        speaker_id = await speaker.page.evaluate("() => room.id")
        assert await listener.page.evaluate("() => said") == [["over HTTP", speaker_id]]
        assert await speaker.page.evaluate("() => said") == []
        assert proxy.refused == 2


async def test_a_session_the_server_forgot_is_made_again(browser: Any, proxy: NoUpgradeProxy) -> None:
    async with tabs(browser, proxy.url) as [tab]:
        await tab.page.goto("/browser/page/")
        await tab.page.evaluate(OPEN_COUNTER)
        name = key()
        assert await tab.page.evaluate("(key) => counter.emitWithAck('count', key)", name) == 1
        # The next request of the session is answered 400 {"code": 1}: a new handshake, with backoff.
        proxy.forget_next = True
        await page_until(tab, "() => seen.connects === 2", "a reconnect over a new long-polling session")
        assert await tab.page.evaluate("() => seen.reasons") == ["transport close"]
        assert await tab.page.evaluate("(key) => counter.emitWithAck('count', key)", name) == 2
        assert await tab.page.evaluate("() => counter.transport") == "polling"
        assert proxy.handshakes() == 2 and proxy.refused == 1


@pytest.fixture(scope="module")
def reaping_server() -> Iterator[Server]:
    with run_server(settings="tests.project.browser.settings_reap") as server:
        yield server


async def test_idle_reap_over_polling_then_the_next_emit_reconnects_and_delivers_once(
    browser: Any, reaping_server: Server
) -> None:
    async with no_upgrade_proxy(reaping_server.url) as proxy, tabs(browser, proxy.url) as [tab]:
        await tab.page.goto("/browser/page/")
        await tab.page.evaluate(OPEN_COUNTER)
        name = key()
        assert await tab.page.evaluate("(key) => counter.emitWithAck('count', key)", name) == 1
        assert await tab.page.evaluate("() => counter.transport") == "polling"
        # Idle past IDLE_TIME: the reaper disconnects the socket and ends the
        # session; the runtime drops its transport and does not reconnect by itself.
        await page_until(tab, "() => seen.reasons.length === 1", "the reaper's disconnect", timeout=10)
        assert await tab.page.evaluate("() => seen.reasons") == ["io server disconnect"]
        await asyncio.sleep(NO_RETRY)
        assert await tab.page.evaluate("() => [counter.connected, counter.transport, seen.connects]") == [
            False, None, 1,
        ]
        assert proxy.handshakes() == 1
        # The next emit reconnects, over long-polling again, and its event arrives exactly once.
        await tab.page.evaluate("(key) => counter.emit('count', key)", name)
        await page_until(tab, "() => seen.connects === 2", "the reconnect of the next emit")
        assert await tab.page.evaluate("(key) => counter.emitWithAck('peek', key)", name) == 2
        assert await tab.page.evaluate("() => counter.transport") == "polling"
        assert proxy.handshakes() == 2 and proxy.refused == 1


OPEN_CHAT = """() => {
    window.chat = rain.context("browser", "1.0").messaging.getSocket("chat");
    chat.on("session_expired", () => seen.events.push("chat: session_expired"));
    chat.on("disconnect", (reason) => seen.reasons.push("chat: " + reason));
}"""


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_logout_elsewhere_publishes_session_expired_once(
    browser: Any, server: Server, proxy: NoUpgradeProxy, transport: str
) -> None:
    url = proxy.url if transport == "polling" else server.url
    async with tabs(browser, url) as [tab]:
        await tab.page.goto("/browser/page/")
        await tab.page.evaluate(OPEN_COUNTER)
        await tab.page.evaluate(OPEN_CHAT)
        assert await tab.page.evaluate("(key) => counter.emitWithAck('count', key)", key()) == 1
        assert await tab.page.evaluate("() => counter.transport") == transport
        # Another tab of the same browser ends the session: the server tells the page's sockets.
        response = await tab.page.context.request.post(f"{url}/browser/flush/")
        assert response.status == 204
        await page_until(
            tab,
            "() => seen.events.length === 2 && seen.reasons.length === 2 && published.length > 0",
            "session_expired and a disconnect on both channels, and on the bus",
        )
        state = await tab.page.evaluate("() => ({seen, published: published.length})")
        assert sorted(state["seen"]["events"]) == ["chat: session_expired", "session_expired"]
        assert sorted(state["seen"]["reasons"]) == ["chat: io server disconnect", "io server disconnect"]
        assert state["published"] == 1
        # The next emit tries once more, and the server refuses: no session.
        await tab.page.evaluate("() => counter.emit('count', 'after')")
        await page_until(tab, "() => seen.errors.length === 1", "the refusal of the CONNECT")
        assert await tab.page.evaluate("() => [seen.errors, published.length]") == [["session required"], 1]
