"""
rain.js, the browser runtime, in headless Chromium against a real daphne
serving the test project (``tests.project.browser``: sessions of 6 s, pings
every second). rain.js against servers that misbehave on purpose is in
``test_browser_raw_server.py``.

Tests wait for what they expect (``until``, ``page_until``) rather than for
a fixed time; the only fixed waits are the ones below, which watch for
something that must *not* happen.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from tests.project.browser.views import JQUERY
from tests.support.browser import COOKIE_AGE, OPEN_COUNTER, REFRESH, Tab, key, open_tab, page_until, requires_browser
from tests.support.recording import until
from tests.support.servers import Server, run_server

pytestmark = [pytest.mark.browser, requires_browser, pytest.mark.asyncio(loop_scope="module")]

#: How long a test watches for a retry that must not come: twice the longest
#: first retry of rain.js (BACKOFF_MS 500 ms x at most 1.5 of jitter = 750 ms).
NO_RETRY = 1.5

#: How long a test watches for a second publish or a second delivery that
#: must not come after the first: one keepalive check of the runtime
#: (COOKIE_AGE x 50 ms = 300 ms), many loopback round trips.
NO_REPEAT = 0.3


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server(settings="tests.project.browser.settings") as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: Any, server: Server) -> AsyncIterator[Tab]:
    """A fresh page (no cookies yet) on the test project; no uncaught errors allowed."""
    tab = await open_tab(browser, server.url)
    yield tab
    await tab.page.context.close()
    assert tab.uncaught == []


async def count(tab: Tab, name: str) -> Any:
    return await tab.page.evaluate("(key) => counter.emitWithAck('count', key)", name)


async def test_hello_acks_and_channels_share_one_websocket(tab: Tab, server: Server) -> None:
    await tab.page.goto("/browser/page/")
    result = await tab.page.evaluate(
        """async () => {
            const echo = rain.context("echo", "2.0").messaging.getSocket("echo");
            const hello = new Promise((resolve) => echo.on("hello", resolve));
            const custom = rain.messaging.getSocket("/custom");
            const auth = new Promise((resolve) => custom.on("auth", resolve));
            const ack = (event, ...args) =>
                new Promise((resolve) => echo.emit(event, ...args, (...reply) => resolve(reply)));
            let failure;
            try {
                await echo.emitWithAck("fail", "refused_code");
            } catch (error) {
                failure = {message: error.message, code: error.code};
            }
            let timeout;
            try {
                await echo.timeout(100).emitWithAck("sleep", 0.5);
            } catch (error) {
                timeout = error.code;
            }
            return {
                hello: await hello,
                auth: await auth,
                same: echo === rain.context("echo", "2.0").messaging.getSocket("/echo/2.0/echo"),
                echo: await ack("echo", 1, "two", {three: [3]}),
                fail: await ack("fail", "refused_code"),
                promise: await echo.emitWithAck("echo", "resolved"),
                failure,
                timeout,
                id: typeof echo.id,
            };
        }"""
    )
    assert result["hello"] == {"message": "Hello Sockets!", "channel": "/echo/2.0/echo"}
    assert result["auth"] == {}
    assert result["same"] is True
    assert result["echo"] == [None, [1, "two", {"three": [3]}]]
    assert result["fail"] == [{"message": "refused on purpose", "code": "refused_code"}, None]
    assert result["promise"] == ["resolved"]
    assert result["failure"] == {"message": "refused on purpose", "code": "refused_code"}
    assert result["timeout"] == "ack_timeout"
    assert result["id"] == "string"
    assert [ws.url for ws in tab.websockets] == [f"{server.ws_url}/socket.io/?EIO=4&transport=websocket"]


async def test_emits_before_the_connection_are_sent_once_in_order(tab: Tab) -> None:
    await tab.page.goto("/browser/page/")
    name = key()
    replies = await tab.page.evaluate(
        """async (key) => {
            const socket = rain.context("browser", "1.0").messaging.getSocket("counter");
            const connected = socket.connected;
            const replies = [];
            const acked = [1, 2, 3].map(() => new Promise((resolve) =>
                socket.emit("count", key, (error, n) => resolve(replies.push(n)))));
            await Promise.all(acked);
            return {connected, replies, total: await socket.emitWithAck("peek", key)};
        }""",
        name,
    )
    assert replies == {"connected": False, "replies": [1, 2, 3], "total": 3}


async def test_the_documented_controller_runs_verbatim(tab: Tab) -> None:
    if not JQUERY.is_file():
        pytest.skip("jQuery is missing: run npm install in tests/js")
    await tab.page.goto("/browser/chat/")
    await until(lambda: tab.alerts, "the chat channel's hello alert")
    assert tab.alerts == ["Hello from the chat channel"]
    await tab.page.click("input[data-itemid='btnCustomHandler']")
    await until(lambda: len(tab.alerts) == 2, "the alert of the custom handler's ack")
    assert tab.alerts == ["Hello from the chat channel", "You said: Welcome!"]

    # A component added later starts with rain.start(), once.
    started = await tab.page.evaluate(
        """async () => {
            const element = document.createElement("div");
            Object.assign(element.dataset, {
                rainComponent: "echo", rainVersion: "2.0", rainController: "/static/browser/later.js",
            });
            document.body.append(element);
            const controller = await rain.start(element);
            return {
                same: rain.start(element) === rain.start(element),
                context: [controller.context.component, controller.context.version],
                root: controller.context.getRoot()[0] === element,
            };
        }"""
    )
    assert started == {"same": True, "context": ["echo", "2.0"], "root": True}
    await tab.page.wait_for_selector("[data-result]", state="attached")
    result = await tab.page.get_attribute("[data-result]", "data-result")
    assert json.loads(result or "") == [None, ["echo/2.0"]]
    assert tab.errors == []


async def test_controllers_load_through_an_amd_loader_when_there_is_one(tab: Tab, server: Server) -> None:
    await tab.page.goto("/browser/page/")
    result = await tab.page.evaluate(
        """async () => {
            const required = [];
            // What RequireJS offers a page: define.amd, and require(deps, ok).
            window.define = Object.assign(() => {}, {amd: {}});
            window.require = (deps, ok) => {
                required.push(...deps);
                ok(function Controller() {
                    this.init = () => (this.initialized = true);
                });
            };
            const element = document.createElement("div");
            Object.assign(element.dataset, {rainComponent: "echo", rainController: "/static/browser/amd.js"});
            const controller = await rain.start(element);
            return {
                required,
                initialized: controller.initialized,
                version: controller.context.version,
                root: controller.context.getRoot() === element,
            };
        }"""
    )
    assert result == {
        "required": [f"{server.url}/static/browser/amd.js"],
        "initialized": True,
        "version": "1.0",
        "root": True,
    }


async def test_the_bus_isolates_subscribers(tab: Tab) -> None:
    await tab.page.goto("/browser/page/")
    calls = await tab.page.evaluate(
        """() => {
            const calls = [];
            const kept = (...args) => calls.push(args);
            const dropped = () => calls.push("dropped");
            rain.messaging.subscribe("news", () => { throw new Error("a broken subscriber"); });
            rain.messaging.subscribe("news", kept);
            rain.messaging.subscribe("news", dropped);
            rain.messaging.unsubscribe("news", dropped);
            rain.messaging.publish("news", 1, {two: 2});
            return calls;
        }"""
    )
    assert calls == [[1, {"two": 2}]]
    assert len(tab.errors_with("a broken subscriber")) == 1


async def test_server_disconnect_waits_for_the_next_emit(tab: Tab) -> None:
    await tab.page.goto("/browser/page/")
    await tab.page.evaluate(OPEN_COUNTER)
    name = key()
    assert await count(tab, name) == 1
    await tab.page.evaluate("() => counter.emit('bye')")
    await page_until(tab, "() => seen.reasons.length === 1", "the server's disconnect")
    # No socket wants the WebSocket any more: it is closed, and not reopened.
    await until(lambda: tab.websockets[0].is_closed(), "the WebSocket to close")
    await asyncio.sleep(NO_RETRY)
    state = await tab.page.evaluate("() => ({connected: counter.connected, seen})")
    assert state["connected"] is False
    assert state["seen"]["reasons"] == ["io server disconnect"]
    assert state["seen"]["connects"] == 1
    assert len(tab.websockets) == 1 and tab.websockets[0].is_closed()

    assert await count(tab, name) == 2
    await asyncio.sleep(NO_REPEAT)
    assert await tab.page.evaluate("(key) => counter.emitWithAck('peek', key)", name) == 2
    assert await tab.page.evaluate("() => seen.connects") == 2
    assert len(tab.websockets) == 2


async def test_binary_both_ways(tab: Tab) -> None:
    await tab.page.goto("/browser/page/")
    await tab.page.evaluate(OPEN_COUNTER)
    result = await tab.page.evaluate(
        """async () => {
            const bytes = (value) => value instanceof ArrayBuffer ? Array.from(new Uint8Array(value)) : value;
            const echo = rain.context("echo", "2.0").messaging.getSocket("echo");
            const reply = await echo.emitWithAck(
                "echo",
                new Uint8Array([0, 1, 2, 254, 255]),
                {nested: [new Uint16Array([513]).buffer, "text"]},
                new Blob([new Uint8Array([7, 8])]),
            );
            const pushed = new Promise((resolve) => counter.once("reversed", resolve));
            const acked = await counter.emitWithAck("reverse", new Uint8Array([1, 2, 3]));
            return {
                reply: [bytes(reply[0]), [bytes(reply[1].nested[0]), reply[1].nested[1]], bytes(reply[2])],
                acked: bytes(acked),
                pushed: bytes(await pushed),
            };
        }"""
    )
    assert result == {
        "reply": [[0, 1, 2, 254, 255], [[1, 2], "text"], [7, 8]],
        "acked": [3, 2, 1],
        "pushed": [3, 2, 1],
    }


async def session_cookie(tab: Tab) -> dict[str, Any]:
    [cookie] = [c for c in await tab.page.context.cookies() if c["name"] == "sessionid"]
    return cookie


async def expire_in_store(session_key: str) -> None:
    """
    End a session in the store, as its expiry date passing does: unlike a
    logout or a flush through Django, nothing tells its sockets.
    """
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    expire = Session.objects.filter(session_key=session_key).update
    assert await asyncio.to_thread(expire, expire_date=timezone.now()) == 1


async def keep_active(tab: Tab, activity: str, ended: bool = False) -> dict[str, Any]:
    """
    Load the page, keep it busy with ``activity`` (JavaScript run every
    500 ms, after the session ended in the store if ``ended``), and return
    the refresh request's status with the session cookie before and after.
    """
    await tab.page.goto("/browser/page/")
    before = await session_cookie(tab)
    await tab.page.evaluate(OPEN_COUNTER)
    await page_until(tab, "() => seen.connects === 1", "the counter channel to connect")
    if ended:
        await expire_in_store(before["value"])
    await tab.page.evaluate(f"(key) => setInterval(() => {{ {activity} }}, 500)", key())
    async with tab.page.expect_response(lambda r: r.url.endswith(REFRESH), timeout=(COOKIE_AGE + 2) * 1000) as refresh:
        pass
    response = await refresh.value
    assert response.request.method == "POST"

    async def cookies() -> list[dict[str, Any]]:
        return [c for c in await tab.page.context.cookies() if c["name"] == "sessionid"]

    async def extended() -> bool:
        return any(cookie["expires"] > before["expires"] for cookie in await cookies())

    if response.status == 204:
        # The browser stores the cookie the response set just after the response.
        await until(extended, "the refresh's session cookie in the browser")
    return {"status": response.status, "before": before, "after": await cookies()}


async def test_keepalive_refreshes_active_pages(browser: Any, server: Server) -> None:
    """
    Socket traffic and the page's own requests count as activity, and extend
    the session; a refresh that finds the session gone publishes
    session_expired.
    """
    tabs = [await open_tab(browser, server.url) for _ in range(4)]
    by_socket, by_xhr, by_fetch, gone = tabs
    echo = "rain.context('echo', '2.0').messaging.getSocket('echo').emit('echo', key)"
    try:
        results = await asyncio.gather(
            keep_active(by_socket, "counter.emit('count', key)"),
            keep_active(by_xhr, "const r = new XMLHttpRequest(); r.open('GET', '/browser/bare/'); r.send()"),
            keep_active(by_fetch, "fetch('/browser/bare/')"),
            keep_active(gone, echo, ended=True),
        )
        for tab, result in zip((by_socket, by_xhr, by_fetch), results):
            assert result["status"] == 204, result
            [after] = result["after"]
            assert after["value"] == result["before"]["value"]
            assert after["expires"] > result["before"]["expires"]
            # Past the first cookie's age, the session still serves the socket.
            await page_until(
                tab,
                f"() => Date.now() - startedAt > {COOKIE_AGE * 1000 + 300}",
                "the first cookie's age to pass",
                timeout=COOKIE_AGE + 2,
            )
            assert isinstance(await count(tab, key()), int)
            assert await tab.page.evaluate("() => published") == []
            assert tab.errors == [], tab.errors

        assert results[3]["status"] == 401
        await page_until(gone, "() => published.length > 0", "session_expired on the bus")
        await asyncio.sleep(NO_REPEAT)
        assert len(await gone.page.evaluate("() => published")) == 1
        # Chromium logs the 401 response itself; the runtime says nothing.
        assert gone.errors_with("rain:") == []
    finally:
        for tab in tabs:
            await tab.page.context.close()
            assert tab.uncaught == []


async def test_idle_page_is_told_its_session_expired(tab: Tab) -> None:
    refreshes = []
    tab.page.on("request", lambda r: refreshes.append(r) if r.url.endswith(REFRESH) else None)
    await tab.page.goto("/browser/page/")
    await tab.page.evaluate(OPEN_COUNTER)
    await page_until(tab, "() => seen.connects === 1", "the counter channel to connect")
    await page_until(tab, "() => published.length > 0", "session_expired on the bus", timeout=COOKIE_AGE + 3)
    await asyncio.sleep(NO_REPEAT)
    published, started = await tab.page.evaluate("() => [published, startedAt]")
    assert len(published) == 1
    assert published[0] - started >= (COOKIE_AGE - 1) * 1000
    assert refreshes == []


OPEN_CHAT = """() => {
    window.chat = rain.context("browser", "1.0").messaging.getSocket("chat");
    chat.on("session_expired", () => seen.events.push("chat: session_expired"));
    chat.on("disconnect", (reason) => seen.reasons.push("chat: " + reason));
}"""


async def assert_session_expired_once(tab: Tab) -> None:
    """Both channels were told and disconnected; the bus heard of it once."""
    await page_until(
        tab,
        "() => seen.events.length === 2 && seen.reasons.length === 2 && published.length > 0",
        "session_expired and a disconnect on both channels, and on the bus",
    )
    await asyncio.sleep(NO_REPEAT)
    state = await tab.page.evaluate("() => ({seen, published: published.length})")
    assert sorted(state["seen"]["events"]) == ["chat: session_expired", "session_expired"]
    assert sorted(state["seen"]["reasons"]) == ["chat: io server disconnect", "io server disconnect"]
    assert state["published"] == 1


async def test_logout_in_another_tab_expires_every_channel_once(tab: Tab, server: Server) -> None:
    await tab.page.goto("/browser/page/")
    await tab.page.evaluate(OPEN_COUNTER)
    await tab.page.evaluate(OPEN_CHAT)
    assert await count(tab, key()) == 1
    # Another tab of the same browser ends the session: the server tells the
    # page's sockets at once.
    response = await tab.page.context.request.post(f"{server.url}/browser/flush/")
    assert response.status == 204
    await assert_session_expired_once(tab)

    # The next emit tries once more, and the server refuses: no session.
    await tab.page.evaluate("() => counter.emit('count', 'after')")
    await page_until(tab, "() => seen.errors.length === 1", "the refusal of the CONNECT")
    assert await tab.page.evaluate("() => seen.errors") == ["session required"]
    assert tab.errors_with("session required")


async def test_login_in_another_tab_reconnects_instead_of_expiring(tab: Tab, server: Server) -> None:
    username = f"user-{uuid.uuid4().hex[:8]}"
    await sync_to_async(User.objects.create_user)(username, password="pw")
    await tab.page.goto("/browser/page/")
    await tab.page.evaluate(OPEN_COUNTER)
    name = key()
    assert await count(tab, name) == 1
    # Another tab logs in: Django gives the session a new key, and the server
    # ends the sockets of the old one. The page's cookie names a live session,
    # so the runtime connects again instead of telling the page it expired.
    response = await tab.page.context.request.post(
        f"{server.url}/accounts/login/", form={"username": username, "password": "pw"}
    )
    assert response.status == 200
    await page_until(
        tab, "() => seen.events.length === 1 && seen.connects === 2", "session_expired, then a reconnect"
    )
    assert await count(tab, name) == 2
    await asyncio.sleep(NO_REPEAT)
    assert await tab.page.evaluate("() => published") == []
    assert await tab.page.evaluate("() => seen.reasons") == ["io server disconnect"]


async def test_session_expired_on_the_server_is_found_by_the_next_emit(tab: Tab) -> None:
    await tab.page.goto("/browser/page/")
    await tab.page.evaluate(OPEN_COUNTER)
    await tab.page.evaluate(OPEN_CHAT)
    assert await count(tab, key()) == 1
    await expire_in_store((await session_cookie(tab))["value"])

    reply = await tab.page.evaluate(
        "(key) => new Promise((resolve) => counter.emit('count', key, (...args) => resolve(args)))", key()
    )
    assert reply == [{"message": "session expired", "code": "session_expired"}, None]
    await assert_session_expired_once(tab)


async def test_page_without_session_gets_one_clear_refusal(tab: Tab) -> None:
    await tab.page.goto("/browser/bare/")
    await tab.page.evaluate(OPEN_COUNTER)
    await page_until(tab, "() => seen.errors.length > 0", "the refusal of the CONNECT")
    # A runtime that retried a final refusal would have retried twice by now.
    await asyncio.sleep(2 * NO_RETRY)
    assert await tab.page.evaluate("() => seen") == {
        "connects": 0,
        "reasons": [],
        "errors": ["session required"],
        "events": [],
    }
    assert len(tab.errors_with("session required")) == 1
    assert len(tab.websockets) == 1


@pytest.fixture(scope="module")
def reaping_server() -> Iterator[Server]:
    with run_server(settings="tests.project.browser.settings_reap") as server:
        yield server


async def test_idle_reap_then_the_next_emit_reconnects_and_delivers_once(browser: Any, reaping_server: Server) -> None:
    tab = await open_tab(browser, reaping_server.url)
    try:
        await tab.page.goto("/browser/page/")
        await tab.page.evaluate(OPEN_COUNTER)
        name = key()
        assert await count(tab, name) == 1
        # Idle past IDLE_TIME: the reaper disconnects the page's socket, and
        # the runtime does not reconnect by itself.
        await page_until(tab, "() => seen.reasons.length === 1", "the reaper's disconnect", timeout=10)
        assert await tab.page.evaluate("() => seen.reasons") == ["io server disconnect"]
        await asyncio.sleep(NO_RETRY)
        assert await tab.page.evaluate("() => [counter.connected, seen.connects]") == [False, 1]
        # The seed's promise: the next emit reconnects, and its event arrives
        # exactly once.
        await tab.page.evaluate("(key) => counter.emit('count', key)", name)
        await page_until(tab, "() => seen.connects === 2", "the reconnect of the next emit")
        assert await tab.page.evaluate("(key) => counter.emitWithAck('peek', key)", name) == 1 + 1
    finally:
        await tab.page.context.close()
    assert tab.uncaught == []
