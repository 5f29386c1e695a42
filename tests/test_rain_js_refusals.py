"""
rain.js when a CONNECT is refused, in headless Chromium: whether it retries is
decided by the CONNECT_ERROR's ``data.code`` (``store_unavailable`` and
``not_connected`` are transient), never by the message's text, and a final
refusal fails the socket's pending acks with the server's message and code.
Against a real daphne serving ``tests.project.browser``, and against a raw
WebSocket server in this process that refuses as told.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from websockets.exceptions import ConnectionClosed

from tests.support.browser import Tab, chromium, open_tab, requires_browser
from tests.support.recording import until
from tests.support.servers import Server, run_server

pytestmark = [pytest.mark.browser, requires_browser, pytest.mark.asyncio(loop_scope="module")]

RAIN_JS = Path(__file__).resolve().parents[1] / "rain_ws" / "static" / "rain_ws" / "rain.js"

#: Longer than rain.js's first retry can take (500 ms x at most 1.5): a
#: refusal still unanswered after it was not retried. Only the assertions
#: that nothing happens wait it out; the others poll.
FIRST_RETRY_S = 1.0

# JavaScript run in the page: opens `channel` as window.refused, emits "count"
# at once (so the emit waits for the CONNECT), and records in window.seen the
# emit's ack arguments, the connect_error events and the connects.
OPEN_AND_EMIT = """(channel) => {
    window.seen = {connects: 0, errors: [], acks: []};
    const socket = window.refused = rain.messaging.getSocket(channel);
    socket.on("connect", () => seen.connects++);
    socket.on("connect_error", (err) => seen.errors.push({message: err.message, data: err.data}));
    window.emitOnce = () => socket.emit("count", "key", function (err, data) {
        seen.acks.push({
            error: err && {message: err.message, code: err.code, isError: err instanceof Error},
            data,
            args: arguments.length,
        });
    });
    emitOnce();
    return socket.connected;
}"""


def error(message: str, code: str) -> dict[str, Any]:
    """A failed ack, as OPEN_AND_EMIT records it."""
    return {"error": {"message": message, "code": code, "isError": True}, "data": None}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as browser:
        yield browser


# -- against rain_ws ----------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server(settings="tests.project.browser.settings") as server:
        yield server


async def test_session_required_fails_the_pending_ack_and_is_not_retried(
    browser: Any, server: Server
) -> None:
    tab = await open_tab(browser, server.url)
    connects: list[str] = []

    def on_websocket(ws: Any) -> None:
        ws.on("framesent", lambda frame: connects.append(frame) if str(frame).startswith("40/") else None)

    tab.page.on("websocket", on_websocket)
    try:
        # No {% rain_ws_client %}: no session cookie, and /browser/1.0/counter
        # requires a session.
        await tab.page.goto("/browser/bare/")
        assert await tab.page.evaluate(OPEN_AND_EMIT, "/browser/1.0/counter") is False
        await tab.page.wait_for_function("() => seen.acks.length === 1 && seen.errors.length === 1")
        seen = await tab.page.evaluate("() => seen")
        assert [{k: v for k, v in ack.items() if k != "args"} for ack in seen["acks"]] == [
            error("session required", "session_required")
        ]
        assert seen["errors"] == [{"message": "session required", "data": {"code": "session_required"}}]
        assert await tab.page.evaluate("() => refused.active") is False

        # Not retried: one CONNECT, over one WebSocket, which is closed.
        await asyncio.sleep(FIRST_RETRY_S)
        assert connects == ["40/browser/1.0/counter,"]
        assert len(tab.websockets) == 1
        await until(lambda: tab.websockets[0].is_closed(), "the unused WebSocket to close")
        assert len(tab.errors_with("session required (not retrying")) == 1

        # The next emit tries once more, and is refused the same way.
        await tab.page.evaluate("() => emitOnce()")
        await tab.page.wait_for_function("() => seen.acks.length === 2")
        assert (await tab.page.evaluate("() => seen.acks"))[1]["error"] == error(
            "session required", "session_required"
        )["error"]
        assert len(connects) == 2
        assert await tab.page.evaluate("() => seen.connects") == 0
    finally:
        await tab.page.context.close()
    assert tab.uncaught == []


async def test_the_ack_callback_gets_the_error_then_null(browser: Any, server: Server) -> None:
    tab = await open_tab(browser, server.url)
    try:
        await tab.page.goto("/browser/bare/")
        await tab.page.evaluate(OPEN_AND_EMIT, "/browser/1.0/counter")
        await tab.page.wait_for_function("() => seen.acks.length === 1")
        # Error-first, as rain_ws's own failed acks: (error, null).
        assert (await tab.page.evaluate("() => seen.acks"))[0]["args"] == 2
        # emitWithAck rejects with that error.
        rejected = await tab.page.evaluate(
            """() => refused.emitWithAck("count", "key").then(
                () => "resolved", (err) => ({message: err.message, code: err.code}))"""
        )
        assert rejected == {"message": "session required", "code": "session_required"}
    finally:
        await tab.page.context.close()
    assert tab.uncaught == []


# -- against a raw server that refuses as told -------------------------------

OPEN = {"sid": "raw", "upgrades": [], "pingInterval": 25000, "pingTimeout": 20000, "maxPayload": 1000000}

#: What each case's server answers to each CONNECT of /status, in turn (then
#: it accepts): CONNECT_ERROR payloads.
REFUSALS: dict[str, list[Any]] = {
    # Transient by its code, whatever the message says.
    "transient": [{"message": "try again later, please", "data": {"code": "store_unavailable"}}] * 2,
    "not_connected": [{"message": "no such socket here", "data": {"code": "not_connected"}}],
    # Final by its code, though its text is what rain.js used to retry.
    "final": [{"message": "session store unavailable", "data": {"code": "not_authorized"}}],
    # A plain Socket.IO server: no code, final, whatever the text.
    "codeless": [{"message": "not connected to /status"}],
    "string": ["session store unavailable"],
}


class RefusingServer:
    """
    Engine.IO and Socket.IO enough for one namespace, /status: a page at
    ``/<case>/`` runs rain.js against ``/ws/<case>/``, whose CONNECTs are
    refused as ``REFUSALS[case]`` says, then accepted; events with an ack id
    are acked ``[null, "answer"]``.
    """

    def __init__(self) -> None:
        self.received: dict[str, list[str | bytes]] = {}
        self.websockets: dict[str, int] = {}
        self.port = 0

    def page(self, connection: Any, request: Any) -> Any:
        """The pages and rain.js, from the WebSocket's origin."""
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
        self.websockets[case] = self.websockets.get(case, 0) + 1
        received = self.received.setdefault(case, [])
        refusals = list(REFUSALS[case])
        try:
            await ws.send("0" + json.dumps(OPEN))
            async for message in ws:
                received.append(message)
                if message == "40/status,":
                    if refusals:
                        await ws.send("44/status," + json.dumps(refusals.pop(0)))
                    else:
                        await ws.send("40/status," + json.dumps({"sid": "raw-socket"}))
                elif isinstance(message, str) and message.startswith("42/status,"):
                    ack_id = message[len("42/status,") :].split("[", 1)[0]
                    if ack_id:
                        await ws.send(f"43/status,{ack_id}" + json.dumps([None, "answer"]))
        except ConnectionClosed:
            pass

    def connects(self, case: str) -> int:
        return self.received.get(case, []).count("40/status,")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def refusing() -> AsyncIterator[RefusingServer]:
    from websockets.asyncio.server import serve

    raw = RefusingServer()
    async with serve(raw.handler, "127.0.0.1", 0, process_request=raw.page) as ws_server:
        raw.port = ws_server.sockets[0].getsockname()[1]
        yield raw
        ws_server.close(close_connections=True)


async def open_case(browser: Any, raw: RefusingServer, case: str) -> Tab:
    tab = await open_tab(browser, f"http://127.0.0.1:{raw.port}")
    await tab.page.goto(f"/{case}/")
    await tab.page.evaluate(OPEN_AND_EMIT, "/status")
    return tab


@pytest.mark.parametrize("case", ["transient", "not_connected"])
async def test_a_transient_code_is_retried_and_the_emit_delivered(
    browser: Any, refusing: RefusingServer, case: str
) -> None:
    tab = await open_case(browser, refusing, case)
    try:
        await tab.page.wait_for_function("() => seen.connects === 1", timeout=10_000)
        seen = await tab.page.evaluate("() => seen")
        # Refused, retried with backoff on the same WebSocket, then connected:
        # the emit that waited is sent once and its ack arrives.
        assert seen["errors"] == REFUSALS[case]
        await tab.page.wait_for_function("() => seen.acks.length === 1")
        assert (await tab.page.evaluate("() => seen.acks")) == [{"error": None, "data": "answer", "args": 2}]
        assert refusing.connects(case) == len(REFUSALS[case]) + 1
        assert refusing.received[case].count('42/status,0["count","key"]') == 1
        assert refusing.websockets[case] == 1
        assert tab.errors_with("not retrying") == []
    finally:
        await tab.page.context.close()
    assert tab.uncaught == []


@pytest.mark.parametrize(
    ("case", "code"),
    [("final", "not_authorized"), ("codeless", "connect_error"), ("string", "connect_error")],
)
async def test_any_other_refusal_is_final_whatever_its_text(
    browser: Any, refusing: RefusingServer, case: str, code: str
) -> None:
    tab = await open_case(browser, refusing, case)
    try:
        await tab.page.wait_for_function("() => seen.acks.length === 1")
        refusal = REFUSALS[case][0]
        message = refusal if isinstance(refusal, str) else refusal["message"]
        # The server's message, and its code or, from a server that sends
        # none, "connect_error".
        acks = await tab.page.evaluate("() => seen.acks")
        assert [{k: v for k, v in ack.items() if k != "args"} for ack in acks] == [error(message, code)]
        await asyncio.sleep(FIRST_RETRY_S)
        assert refusing.connects(case) == 1
        state = await tab.page.evaluate("() => [seen.connects, seen.errors.length, refused.active]")
        assert state == [0, 1, False]
        assert len(tab.errors_with(f"{message} (not retrying")) == 1
    finally:
        await tab.page.context.close()
    assert tab.uncaught == []
