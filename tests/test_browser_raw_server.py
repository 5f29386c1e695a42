"""
rain.js, the browser runtime, in headless Chromium against servers that
misbehave on purpose: the test project with a session refresh view that
answers 500 (``tests.project.browser.settings_failing_refresh``), and a raw
WebSocket server in this process that sends malformed data, stops pinging or
sets a small maxPayload. rain.js against the real server is in
``test_browser.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from websockets.exceptions import ConnectionClosed

from tests.support.browser import (
    COOKIE_AGE,
    OPEN_COUNTER,
    RAIN_JS,
    REFRESH,
    Tab,
    key,
    open_tab,
    page_until,
    requires_browser,
)
from tests.support.recording import until
from tests.support.servers import Server, run_server

pytestmark = [pytest.mark.browser, requires_browser, pytest.mark.asyncio(loop_scope="module")]

#: How long the malformed-data test counts reconnects: retries 500 ms x 2^n
#: apart (x0.5 to x1.5 jitter) fit two or three in it; a loop would fit
#: hundreds. It watches for the whole window: the bound is on what does not
#: happen.
RECONNECT_WINDOW = 3.0


@pytest.fixture(scope="module")
def failing_refresh_server() -> Iterator[Server]:
    with run_server(settings="tests.project.browser.settings_failing_refresh") as server:
        yield server


async def test_failing_refresh_is_logged_and_retried(browser: Any, failing_refresh_server: Server) -> None:
    tab = await open_tab(browser, failing_refresh_server.url)
    statuses: list[int] = []
    tab.page.on("response", lambda r: statuses.append(r.status) if r.url.endswith(REFRESH) else None)
    await tab.page.goto("/browser/page/")
    await tab.page.evaluate(OPEN_COUNTER)
    await tab.page.evaluate("(key) => setInterval(() => counter.emit('count', key), 500)", key())
    await until(lambda: len(statuses) >= 2, "two answers of the refresh view", timeout=COOKIE_AGE + 3)
    assert statuses[:2] == [500, 500]
    await until(lambda: tab.errors_with("answered 500"), "the runtime to log the failed refresh")
    assert await tab.page.evaluate("() => published") == []
    await tab.page.context.close()
    assert tab.uncaught == []


# -- a raw WebSocket server that misbehaves --------------------------------

OPEN = {"sid": "raw", "upgrades": [], "pingInterval": 25000, "pingTimeout": 20000, "maxPayload": 1000000}


class RawServer:
    """
    A WebSocket server speaking just enough Engine.IO to misbehave: a page at
    ``/<case>/`` runs rain.js against ``/ws/<case>/``, whose ``case_<case>``
    method says what to do with each connection.
    """

    def __init__(self) -> None:
        self.connections: dict[str, list[float]] = {}
        self.received: dict[str, list[str | bytes]] = {}
        self.port = 0

    def page(self, connection: Any, request: Any) -> Any:
        """Serve the pages and rain.js (from this origin: Chromium lets only
        a loopback page open a loopback WebSocket)."""
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        path = request.path.split("?")[0]
        if path.startswith("/ws/"):
            return None  # the WebSocket handshake
        if path == "/rain.js":
            body, kind = RAIN_JS.read_bytes(), "text/javascript"
        else:
            config = json.dumps({"path": f"/ws{path}"})
            body = (
                f'<!doctype html><script id="rain-ws-config" type="application/json">{config}</script>'
                '<script src="/rain.js"></script>'
            ).encode()
            kind = "text/html"
        return Response(200, "OK", Headers({"Content-Type": kind, "Content-Length": str(len(body))}), body)

    async def handler(self, ws: Any) -> None:
        case = ws.request.path.split("?")[0].strip("/").split("/")[-1]
        self.connections.setdefault(case, []).append(time.monotonic())
        received = self.received.setdefault(case, [])
        try:
            await getattr(self, f"case_{case}")(ws, received)
            async for message in ws:
                received.append(message)
        except ConnectionClosed:
            pass  # the client closed: what the tests expect of it

    async def accept(self, ws: Any, received: list[str | bytes], **options: Any) -> None:
        """Open, and accept the client's CONNECT."""
        await ws.send("0" + json.dumps({**OPEN, **options}))
        received.append(await ws.recv())
        await ws.send("40/status," + json.dumps({"sid": "raw-socket"}))

    async def case_json(self, ws: Any, received: list[str | bytes]) -> None:
        await self.accept(ws, received)
        await ws.send('42/status,["news", {"unterminated": ')

    async def case_engine(self, ws: Any, received: list[str | bytes]) -> None:
        await self.accept(ws, received)
        await ws.send("9nonsense")

    async def case_payload(self, ws: Any, received: list[str | bytes]) -> None:
        await self.accept(ws, received)
        await ws.send('42/status,{"not": "an array"}')

    async def case_binary(self, ws: Any, received: list[str | bytes]) -> None:
        await self.accept(ws, received)
        await ws.send(b"\x00\x01")

    async def case_placeholder(self, ws: Any, received: list[str | bytes]) -> None:
        await self.accept(ws, received)
        await ws.send('451-/status,["news",{"_placeholder":true,"num":7}]')
        await ws.send(b"\x00")

    async def case_open(self, ws: Any, received: list[str | bytes]) -> None:
        await ws.send('0{"sid": 1}')

    async def case_heartbeat(self, ws: Any, received: list[str | bytes]) -> None:
        # One ping, then silence: the client must pong, then give up after
        # pingInterval + pingTimeout.
        await self.accept(ws, received, pingInterval=300, pingTimeout=200)
        await ws.send("2")

    async def case_small(self, ws: Any, received: list[str | bytes]) -> None:
        await self.accept(ws, received, maxPayload=1000)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def raw_server() -> AsyncIterator[RawServer]:
    from websockets.asyncio.server import serve

    raw = RawServer()
    async with serve(raw.handler, "127.0.0.1", 0, process_request=raw.page) as ws_server:
        raw.port = ws_server.sockets[0].getsockname()[1]
        yield raw
        ws_server.close(close_connections=True)


async def open_raw_case(browser: Any, raw: RawServer, case: str) -> Tab:
    """A page whose runtime connects to the raw server's ``case``."""
    tab = await open_tab(browser, f"http://127.0.0.1:{raw.port}")
    await tab.page.goto(f"/{case}/")
    await tab.page.evaluate(
        """() => {
            window.seen = {connects: 0, reasons: []};
            window.raw = rain.messaging.getSocket("/status");
            raw.on("connect", () => seen.connects++);
            raw.on("disconnect", (reason) => seen.reasons.push(reason));
        }"""
    )
    return tab


MALFORMED = {
    "json": "invalid JSON",
    "engine": "unexpected Engine.IO packet",
    "payload": "invalid packet of type 2",
    "binary": "binary frame with no attachment pending",
    "placeholder": "names no attachment",
    "open": "invalid open packet",
}


async def test_malformed_data_is_reported_and_reconnected_with_backoff(browser: Any, raw_server: RawServer) -> None:
    opened = await asyncio.gather(*(open_raw_case(browser, raw_server, case) for case in MALFORMED))
    tabs = dict(zip(MALFORMED, opened))
    connections = raw_server.connections
    await until(lambda: all(case in connections for case in MALFORMED), "a connection of every case")
    first_ends = max(connections[case][0] for case in MALFORMED) + RECONNECT_WINDOW
    await asyncio.sleep(max(0.0, first_ends - time.monotonic()))
    for case, expected in MALFORMED.items():
        tab = tabs[case]
        first = connections[case][0]
        reconnects = [at - first for at in connections[case][1:] if at - first <= RECONNECT_WINDOW]
        # Reconnected, with backoff, not in a loop.
        assert 1 <= len(reconnects) <= 3, (case, reconnects)
        assert tab.errors_with(expected), (case, tab.errors)
        assert len(tab.errors) == len(tab.errors_with(expected)), (case, tab.errors)
        if case != "open":
            assert "parse error" in await tab.page.evaluate("() => seen.reasons"), case
        await tab.page.context.close()
        assert tab.uncaught == [], case


async def test_pings_are_answered_and_missing_pings_end_the_transport(browser: Any, raw_server: RawServer) -> None:
    tab = await open_raw_case(browser, raw_server, "heartbeat")
    await page_until(tab, "() => seen.connects >= 2", "a reconnect after the missing pings")
    reasons = await tab.page.evaluate("() => seen.reasons")
    assert reasons[0] == "ping timeout"
    assert raw_server.received["heartbeat"][:2] == ["40/status,", "3"]
    await tab.page.context.close()
    assert tab.uncaught == []


async def test_emits_over_max_payload_are_refused(browser: Any, raw_server: RawServer) -> None:
    tab = await open_raw_case(browser, raw_server, "small")
    await page_until(tab, "() => seen.connects === 1", "the channel to connect")
    refused = await tab.page.evaluate(
        """() => {
            try {
                raw.emit("big", "x".repeat(2000));
            } catch (error) {
                raw.emit("small", "y");
                return error.name + ": " + error.message;
            }
        }"""
    )
    assert refused == "RangeError: packet over the server's maxPayload (1000 bytes)"
    await until(lambda: len(raw_server.received["small"]) >= 2, "the small emit at the server")
    assert raw_server.received["small"] == ["40/status,", '42/status,["small","y"]']
    await tab.page.context.close()
