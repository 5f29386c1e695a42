"""
rain.js against the official Socket.IO 4.x server (``tests/js/rain_interop_server.mjs``
under node), in headless Chromium: the runtime speaks plain Socket.IO, not
only rain_ws's dialect of it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from tests.support.browser import Tab, chromium, open_tab, requires_browser
from tests.support.node import JS_DIR, requires_node

pytestmark = [
    pytest.mark.browser,
    pytest.mark.node,
    requires_browser,
    requires_node,
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest.fixture(scope="module")
def node_server() -> Iterator[str]:
    """The node server's base URL."""
    process = subprocess.Popen(
        ["node", str(JS_DIR / "rain_interop_server.mjs")],
        cwd=JS_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            pytest.fail(f"the node server exited with {process.wait()}")
        yield f"http://127.0.0.1:{json.loads(line)['port']}"
    finally:
        process.terminate()
        process.wait(10)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: Any, node_server: str) -> AsyncIterator[Tab]:
    """The test page, with /interop open as window.socket and its life recorded in window.seen."""
    tab = await open_tab(browser, node_server)
    await tab.page.goto("/")
    await tab.page.evaluate(
        """() => {
            window.seen = {connects: 0, reasons: [], hello: []};
            window.socket = rain.messaging.getSocket("/interop");
            socket.on("connect", () => seen.connects++);
            socket.on("disconnect", (reason) => seen.reasons.push(reason));
            socket.on("hello", (hello) => seen.hello.push(hello));
            socket.on("question", (question, ack) => ack(question === "6 x 7" ? 42 : "?"));
        }"""
    )
    await tab.page.wait_for_function("() => seen.hello.length === 1")
    yield tab
    await tab.page.context.close()
    assert tab.uncaught == []


async def handshakes(tab: Tab) -> int:
    """How many WebSockets the server has accepted so far."""
    return await tab.page.evaluate(
        "() => new Promise((resolve) => socket.emit('stats', (stats) => resolve(stats.handshakes)))"
    )


async def test_events_and_plain_acks(tab: Tab) -> None:
    result = await tab.page.evaluate(
        """async () => {
            const ack = (event, ...args) =>
                new Promise((resolve) => socket.emit(event, ...args, (...reply) => resolve(reply)));
            let timeout;
            try {
                await socket.timeout(200).emitWithAck("silent");
            } catch (error) {
                timeout = error.code;
            }
            return {
                hello: seen.hello[0],
                id: socket.id,
                echo: await ack("echo", 1, "two", {three: [3]}),
                asked: await ack("ask"),
                counted: await socket.emitWithAck("count", "interop-events"),
                timeout,
            };
        }"""
    )
    assert result["hello"] == {"message": "Hello from socket.io", "id": result["id"]}
    # A plain Socket.IO ack reaches the callback exactly as the server sent it.
    assert result["echo"] == [1, "two", {"three": [3]}]
    assert result["asked"] == [42]
    assert result["counted"] == 1
    assert result["timeout"] == "ack_timeout"


async def test_binary_both_ways(tab: Tab) -> None:
    result = await tab.page.evaluate(
        """async () => {
            const bytes = (value) => Array.from(new Uint8Array(value));
            const pushed = new Promise((resolve) => socket.once("reversed", resolve));
            const acked = await new Promise((resolve) =>
                socket.emit("reverse", new Uint8Array([1, 2, 3, 255]), resolve));
            const echoed = await new Promise((resolve) =>
                socket.emit("echo", {blob: new Blob([new Uint8Array([9, 8])])}, resolve));
            return {acked: bytes(acked), pushed: bytes(await pushed), echoed: bytes(echoed.blob)};
        }"""
    )
    assert result == {"acked": [255, 3, 2, 1], "pushed": [255, 3, 2, 1], "echoed": [9, 8]}


async def test_reconnects_every_channel_by_itself_when_the_transport_drops(tab: Tab) -> None:
    await tab.page.evaluate(
        """() => {
            window.second = rain.messaging.getSocket("/second");
            seen.second = 0;
            second.on("connect", () => seen.second++);
        }"""
    )
    await tab.page.wait_for_function("() => seen.second === 1")
    before = await handshakes(tab)
    await tab.page.evaluate("() => socket.emit('drop')")
    await tab.page.wait_for_function("() => seen.connects === 2 && seen.second === 2", timeout=5000)
    assert await tab.page.evaluate("() => seen.reasons") == ["transport close"]
    assert await handshakes(tab) == before + 1
    assert await tab.page.evaluate("() => seen.hello.length") == 2


async def test_client_disconnect_and_connect(tab: Tab) -> None:
    await tab.page.evaluate("() => socket.disconnect()")
    await asyncio.sleep(1)
    assert await tab.page.evaluate("() => [socket.connected, seen.connects, seen.reasons]") == [
        False,
        1,
        ["io client disconnect"],
    ]
    await tab.page.evaluate("() => socket.connect()")
    await tab.page.wait_for_function("() => socket.connected && seen.connects === 2")
    assert await tab.page.evaluate("() => socket.emitWithAck('count', 'interop-connect')") >= 1


async def test_namespace_disconnect_waits_for_the_next_emit(tab: Tab) -> None:
    key = uuid.uuid4().hex
    assert await tab.page.evaluate("(key) => socket.emitWithAck('count', key)", key) == 1
    before = await handshakes(tab)
    await tab.page.evaluate("() => socket.emit('kick')")
    await tab.page.wait_for_function("() => seen.reasons.length === 1")
    await asyncio.sleep(1.5)
    assert await tab.page.evaluate("() => [socket.connected, seen.connects, seen.reasons]") == [
        False,
        1,
        ["io server disconnect"],
    ]
    # The next emit reconnects, over a new WebSocket, and is delivered once.
    assert await tab.page.evaluate("(key) => socket.emitWithAck('count', key)", key) == 2
    assert await tab.page.evaluate("() => seen.connects") == 2
    assert await handshakes(tab) == before + 1


async def test_refused_namespace_is_not_retried(tab: Tab) -> None:
    await tab.page.evaluate(
        """() => {
            window.refusals = [];
            rain.messaging.getSocket("/private").on("connect_error", (error) => refusals.push(error.message));
        }"""
    )
    await tab.page.wait_for_function("() => refusals.length > 0")
    await asyncio.sleep(1.5)
    assert await tab.page.evaluate("() => refusals") == ["not authorized"]
    assert len(tab.errors_with("not authorized")) == 1
    # /interop, on the same WebSocket, is not disturbed.
    assert await tab.page.evaluate("() => [socket.connected, seen.reasons]") == [True, []]
    assert len(tab.websockets) == 1
