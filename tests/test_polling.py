"""
Engine.IO v4 HTTP long-polling, and the upgrade to WebSocket, on real
servers (daphne and uvicorn).

The requests are raw: aiohttp for GETs and POSTs, the ``websockets`` library
for the upgrade, and this module's own codec for payloads (packets separated
by ``\\x1e``, binary ones as ``b`` and base64), so that nothing of rain_ws's
own protocol code checks rain_ws. The test project's settings: a ping every
5 s, answered within 5 s, ``MAX_PAYLOAD`` 1,000,000 bytes.

Where the server has a bug, the test that shows it is marked
``xfail(strict=True)`` with the reason: it turns green once fixed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from typing import Any

import aiohttp
import pytest
from websockets.exceptions import ConnectionClosed
from yarl import URL

from tests.support.servers import Server, run_server
from tests.support.wire import log_line, open_connection, wire_client
from tests.test_hostile import RSS_GROWTH_BOUND_KIB, RssWatch, serving_pid

ECHO = "/echo/2.0/echo"
SYNC = "/echo/2.0/sync"
MEMO = "/memo/1.0/memo"
#: tests/project/settings.py
PING_INTERVAL = 5.0
PING_TIMEOUT = 5.0
MAX_PAYLOAD = 1_000_000
#: Django's DATA_UPLOAD_MAX_MEMORY_SIZE (the test project keeps the default).
DJANGO_BODY_LIMIT = 2_621_440
WAIT = 10.0
RS = "\x1e"
EVIL = "http://evil.example"

SESSION_ID_UNKNOWN = {"code": 1, "message": "Session ID unknown"}
BAD_REQUEST = {"code": 3, "message": "Bad request"}


# -- the codec and the client ----------------------------------------------------------


Packet = str | bytes


def encode(packets: tuple[Packet, ...]) -> str:
    """A long-polling payload: text packets as they are, binary ones as ``b`` and base64."""
    return RS.join("b" + base64.b64encode(p).decode() if isinstance(p, bytes) else p for p in packets)


def decode(payload: str) -> list[Packet]:
    return [base64.b64decode(p[1:]) if p.startswith("b") else p for p in payload.split(RS)]


def dechunk(data: bytes) -> bytes:
    """A body sent with ``Transfer-Encoding: chunked``, whole."""
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2:]


class Polling:
    """One long-polling Engine.IO session, driven request by request."""

    def __init__(self, http: aiohttp.ClientSession, server: Server, path: str = "/socket.io/") -> None:
        self.http = http
        self.server = server
        self.base = f"{server.url}{path}?EIO=4&transport=polling"
        self.sid = ""
        self.handshake: dict[str, Any] = {}
        #: The client's ``host:port`` at the handshake, as the server names it in its log.
        self.address = ""
        #: Packets a GET brought that no read has returned yet.
        self.unread: list[Packet] = []

    @property
    def url(self) -> str:
        return f"{self.base}&sid={self.sid}"

    async def request(self, method: str, url: str, body: str | bytes | None = None, **headers: str) -> tuple[int, str]:
        async with self.http.request(method, url, data=body, headers=headers) as response:
            return response.status, await response.text()

    async def open(self, **headers: str) -> dict[str, Any]:
        """
        The handshake: a GET without sid, answered with the OPEN packet
        (followed by a close packet past MAX_CONNECTIONS). It goes on a connection of its own (HTTP/1.0, with the
        cookies of the client's jar), to learn the client address the
        server names the session by in its log.
        """
        target = self.base[len(self.server.url):]
        cookies = self.http.cookie_jar.filter_cookies(URL(self.server.url))
        if cookies:
            headers = {"Cookie": "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items()), **headers}
        reader, writer = await asyncio.open_connection(self.server.host, self.server.port)
        try:
            host, port = writer.get_extra_info("sockname")[:2]
            self.address = f"{host}:{port}"
            lines = [f"GET {target} HTTP/1.0", f"Host: {self.server.host}:{self.server.port}"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            response = await asyncio.wait_for(reader.read(), WAIT)
        finally:
            writer.close()
        head, _, body_bytes = response.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        if any(line.lower().replace(" ", "") == "transfer-encoding:chunked" for line in header_lines):
            body_bytes = dechunk(body_bytes)  # uvicorn chunks its answer even to HTTP/1.0
        body = body_bytes.decode()
        assert status_line.split()[1] == "200", response
        content_type = next(line for line in header_lines if line.lower().startswith("content-type:"))
        assert content_type.split(":", 1)[1].strip().startswith("text/plain"), content_type
        opening, *rest = body.split(RS)
        assert opening.startswith("0"), body
        # Past MAX_CONNECTIONS, a close packet may follow the OPEN packet.
        assert rest in ([], ["1"]), body
        self.handshake = json.loads(opening[1:])
        self.sid = self.handshake["sid"]
        return self.handshake

    async def get(self, **headers: str) -> tuple[int, str]:
        return await self.request("GET", self.url, **headers)

    async def post(self, *packets: Packet, **headers: str) -> tuple[int, str]:
        return await self.request("POST", self.url, encode(packets), **headers)

    async def send(self, *packets: Packet) -> None:
        status, body = await self.post(*packets)
        assert (status, body) == (200, "ok"), (status, body)

    async def read(self, count: int, timeout: float = WAIT) -> list[Packet]:
        """
        The next ``count`` packets other than pings and noops, with as many
        GETs as it takes; pings are answered, and packets past ``count`` are
        kept for the next read.
        """
        deadline = time.monotonic() + timeout
        while len(self.unread) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {self.unread} within {timeout} s"
            status, body = await asyncio.wait_for(self.get(), remaining)
            assert status == 200, (status, body)
            for packet in decode(body):
                if packet == "2":
                    await self.send("3")
                elif packet != "6":
                    self.unread.append(packet)
        packets, self.unread = self.unread[:count], self.unread[count:]
        return packets

    async def connect(self, namespace: str) -> list[Packet]:
        """CONNECT ``namespace`` and return the reply (and, on the echo channels, the ``hello``)."""
        await self.send(f"40{namespace},")
        reply = (await self.read(1))[0]
        assert isinstance(reply, str) and reply.startswith(f"40{namespace},"), reply
        if namespace == ECHO:
            return [reply, *(await self.read(1))]
        return [reply]

    async def echo(self, ack_id: int, *args: Any) -> Any:
        """``echo`` on the echo channel; return the ack's arguments."""
        await self.send(f"42{ECHO},{ack_id}" + json.dumps(["echo", *args]))
        [ack] = await self.read(1)
        prefix = f"43{ECHO},{ack_id}"
        assert isinstance(ack, str) and ack.startswith(prefix), ack
        return json.loads(ack[len(prefix):])


def error_body(body: str) -> Any:
    return json.loads(body)


async def assert_session_gone(poll: Polling) -> None:
    """
    The server closed ``poll``'s session: a GET gets at once what was left
    (nothing but a noop, or a close packet, here) and, at the latest on the
    next GET, 400 with "Session ID unknown".
    """
    for _ in range(2):
        started = time.monotonic()
        status, body = await asyncio.wait_for(poll.get(), WAIT)
        assert time.monotonic() - started < 2.0, "a GET waited on a closed session"
        if status == 400:
            assert error_body(body) == SESSION_ID_UNKNOWN
            return
        assert status == 200 and set(decode(body)) <= {"6", "1"}, (status, body)
    pytest.fail("the session still answers GETs")


async def assert_logged(server: Server, *parts: str, since: int) -> str:
    line = await log_line(server, *parts, since=since, timeout=5.0)
    assert line is not None, f"no log line with {parts}:\n{server.log()[since:][-3000:]}"
    return line


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def polling_first_server() -> Iterator[Server]:
    """The test project on uvicorn with ``http_application()``: long-polling answered before Django."""
    with run_server(server="uvicorn", application="tests.project.asgi_polling_first:application") as running:
        yield running


@pytest.fixture(params=["daphne", "uvicorn", "polling_first"])
def server(request: pytest.FixtureRequest) -> Server:
    """
    The test project on daphne, on uvicorn (the session's servers), and on
    uvicorn with the recommended wiring.
    """
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client with a cookie jar, like a browser's (``unsafe``: the server is an IP address)."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield session


@pytest.fixture
async def poll(http: aiohttp.ClientSession, server: Server) -> Polling:
    """A session opened on the multiplexed endpoint."""
    client = Polling(http, server)
    await client.open()
    return client


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def quick_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The official suite's settings (ping every 0.3 s, answered within 0.2 s): on daphne, then on uvicorn."""
    with run_server(settings="tests.project.settings_suite", server=request.param) as running:
        yield running


# -- the handshake ---------------------------------------------------------------------


async def test_handshake_offers_the_upgrade(http: aiohttp.ClientSession, server: Server) -> None:
    poll = Polling(http, server)
    handshake = await poll.open()
    assert set(handshake) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(handshake["sid"], str) and handshake["sid"]
    assert handshake["upgrades"] == ["websocket"]
    assert (handshake["pingInterval"], handshake["pingTimeout"]) == (5000, 5000)
    assert handshake["maxPayload"] == MAX_PAYLOAD
    other = Polling(http, server)
    assert (await other.open())["sid"] != handshake["sid"]
    # Over WebSocket there is nothing to upgrade to.
    async with wire_client(server.ws_url) as client:
        assert client.handshake["upgrades"] == []


async def test_answers_are_not_cached(http: aiohttp.ClientSession, server: Server) -> None:
    async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling") as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"


# -- GET and POST ----------------------------------------------------------------------


async def test_get_waits_for_output_and_at_most_a_ping_interval(poll: Polling) -> None:
    await poll.connect(ECHO)
    # A GET with nothing to take waits...
    waiting = asyncio.create_task(poll.get())
    await asyncio.sleep(0.5)
    assert not waiting.done(), waiting.result()
    # ...and returns as soon as there is output.
    await poll.send(f'42{ECHO},1["echo","woken"]')
    status, body = await asyncio.wait_for(waiting, 2.0)
    assert (status, decode(body)) == (200, [f'43{ECHO},1[null,["woken"]]'])
    # With nothing to send, the server's ping ends the wait within PING_INTERVAL.
    started = time.monotonic()
    status, body = await asyncio.wait_for(poll.get(), PING_INTERVAL + 2)
    elapsed = time.monotonic() - started
    assert (status, body) == (200, "2")
    assert elapsed <= PING_INTERVAL + 0.5, elapsed
    await poll.send("3")
    assert await poll.echo(2, "after the pong") == [None, ["after the pong"]]


async def test_post_carries_several_packets(poll: Polling) -> None:
    hello = await poll.connect(ECHO)
    assert hello[1] == f'42{ECHO},["hello",{{"message":"Hello Sockets!","channel":"{ECHO}"}}]'
    await poll.send(*(f'42{ECHO},{n}["echo",{n},"é\u2603"]' for n in range(1, 4)))
    assert await poll.read(3) == [f'43{ECHO},{n}[null,[{n},"é\u2603"]]' for n in range(1, 4)]


async def test_binary_both_ways_as_base64(poll: Polling) -> None:
    await poll.connect(ECHO)
    blob = bytes(range(256))
    placeholders = '[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    await poll.send(f'452-{ECHO},7["echo",{placeholders}]', blob, b"\x00")
    status, body = await poll.get()
    assert status == 200
    assert body.split(RS) == [
        f"462-{ECHO},7[null,[{placeholders}]]",
        "b" + base64.b64encode(blob).decode(),
        "bAA==",
    ]


async def test_second_get_at_once_is_refused_and_closes_the_session(poll: Polling, server: Server) -> None:
    await poll.connect(ECHO)
    since = len(server.log())
    first = asyncio.create_task(poll.get())
    await asyncio.sleep(0.3)
    status, body = await poll.get()
    assert (status, error_body(body)) == (400, BAD_REQUEST)
    # The waiting GET returns at once with what was left.
    status, body = await asyncio.wait_for(first, 2.0)
    assert status == 200 and set(decode(body)) <= {"6", "1"}, body
    await assert_session_gone(poll)
    await assert_logged(server, f"closing {poll.address}", "two long-polling GETs at once", since=since)


async def test_post_over_max_payload_is_refused_with_413(poll: Polling, server: Server) -> None:
    await poll.connect(ECHO)
    since = len(server.log())
    status, body = await poll.post("4" + "x" * MAX_PAYLOAD)  # MAX_PAYLOAD + 1 characters
    assert (status, error_body(body)) == (413, BAD_REQUEST)
    await assert_session_gone(poll)
    await assert_logged(server, f"closing {poll.address}", f"POST over MAX_PAYLOAD ({MAX_PAYLOAD} bytes)", since=since)


async def test_post_of_max_payload_is_taken(poll: Polling) -> None:
    await poll.connect(ECHO)
    text = "y" * (MAX_PAYLOAD - len(f'42{ECHO},9["echo",""]'))
    await poll.send(f'42{ECHO},9["echo","{text}"]')
    assert await poll.read(1) == [f'43{ECHO},9[null,["{text}"]]']


async def test_post_over_max_payload_in_utf8_bytes_is_refused(poll: Polling) -> None:
    await poll.connect(ECHO)
    body = f'42{ECHO},["echo","' + "é" * 600_000 + '"]'
    assert len(body) < MAX_PAYLOAD < len(body.encode())
    status, _ = await poll.post(body)
    assert status == 413


async def test_post_over_djangos_body_limit_is_refused_like_any_post_over_max_payload(
    poll: Polling, server: Server
) -> None:
    await poll.connect(ECHO)
    since = len(server.log())
    status, body = await poll.post("4" + "x" * DJANGO_BODY_LIMIT)
    assert status == 413, body[:200]
    assert error_body(body) == BAD_REQUEST
    await assert_session_gone(poll)
    await assert_logged(server, f"POST over MAX_PAYLOAD ({MAX_PAYLOAD} bytes)", since=since)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("bAQ=?", "invalid base64 in a binary packet"),
        ("b!!!!", "invalid base64 in a binary packet"),
        ("", "empty packet in a long-polling payload"),
        (f'42{ECHO},["echo"]{RS}{RS}3', "empty packet in a long-polling payload"),
        (f'42{ECHO},["echo"]{RS}', "empty packet in a long-polling payload"),
    ],
    ids=["bad-padding", "not-base64", "empty-body", "empty-packet", "trailing-separator"],
)
async def test_malformed_payload_is_refused_and_closes_the_session(
    poll: Polling, server: Server, payload: str, reason: str
) -> None:
    await poll.connect(ECHO)
    since = len(server.log())
    status, body = await poll.request("POST", poll.url, payload)
    assert (status, error_body(body)) == (400, BAD_REQUEST)
    await assert_session_gone(poll)
    await assert_logged(server, f"closing {poll.address}", reason, since=since)


async def test_body_that_is_not_utf8_is_refused_and_the_session_stays(poll: Polling) -> None:
    await poll.connect(ECHO)
    status, body = await poll.request("POST", poll.url, b"4\xff\xfe")
    assert (status, error_body(body)) == (400, BAD_REQUEST)
    assert await poll.echo(1, "still open") == [None, ["still open"]]


async def test_client_close_packet_ends_the_session(poll: Polling) -> None:
    await poll.connect(ECHO)
    waiting = asyncio.create_task(poll.get())
    await asyncio.sleep(0.3)
    await poll.send("1")
    status, body = await asyncio.wait_for(waiting, 2.0)
    assert (status, body) == (200, "6")
    status, body = await poll.get()
    assert (status, error_body(body)) == (400, SESSION_ID_UNKNOWN)


# -- refused requests ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("sid", ["unknown", "0.0.0", "x" * 300])
async def test_unknown_sid(http: aiohttp.ClientSession, server: Server, method: str, sid: str) -> None:
    url = f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
    started = time.monotonic()
    async with http.request(method, url, data="40" if method == "POST" else None) as response:
        assert response.status == 400
        assert await response.json() == SESSION_ID_UNKNOWN
    assert time.monotonic() - started < 1.0


async def test_sid_of_an_ended_session_is_unknown(poll: Polling) -> None:
    await poll.send("1")
    await assert_session_gone(poll)
    status, body = await poll.post("40")
    assert (status, error_body(body)) == (400, SESSION_ID_UNKNOWN)


@pytest.mark.parametrize(
    ("method", "query", "expected"),
    [
        ("GET", "transport=polling", {"code": 5, "message": "Unsupported protocol version"}),
        ("GET", "EIO=3&transport=polling", {"code": 5, "message": "Unsupported protocol version"}),
        ("GET", "EIO=abc&transport=polling", {"code": 5, "message": "Unsupported protocol version"}),
        ("GET", "EIO=4", {"code": 0, "message": "Transport unknown"}),
        ("GET", "EIO=4&transport=abc", {"code": 0, "message": "Transport unknown"}),
        ("POST", "EIO=4&transport=polling", {"code": 2, "message": "Bad handshake method"}),
        ("PUT", "EIO=4&transport=polling", {"code": 2, "message": "Bad handshake method"}),
    ],
)
async def test_bad_query_or_method(
    http: aiohttp.ClientSession, server: Server, method: str, query: str, expected: dict[str, Any]
) -> None:
    async with http.request(method, f"{server.url}/socket.io/?{query}", data="" if method != "GET" else None) as response:
        assert response.status == 400
        assert response.headers["Content-Type"] == "application/json"
        assert await response.json() == expected


async def test_foreign_origin_is_refused_and_same_origin_served(
    http: aiohttp.ClientSession, quick_server: Server
) -> None:
    """
    On ``quick_server``, where nothing else is refused, so that this refusal
    is not one of those the refusal log leaves out (10 lines per 10 s).
    """
    server = quick_server
    since = len(server.log())
    refused = Polling(http, server)
    status, body = await refused.request("GET", refused.base, Origin=EVIL)
    assert (status, error_body(body)) == (403, {"code": 4, "message": "Forbidden"})
    await assert_logged(server, f"refused long-polling from foreign origin '{EVIL}'", since=since)
    same = Polling(http, server)
    await same.open(Origin=server.url)
    status, body = await same.request("POST", same.url, "40", Origin=server.url)
    assert (status, body) == (200, "ok")
    reply, auth = await same.read(2)
    assert isinstance(reply, str) and reply.startswith('40{"sid":'), reply
    assert auth == '42["auth",{}]'


async def visit(http: aiohttp.ClientSession, server: Server) -> None:
    """Get a session cookie from a plain Django view, as a page would."""
    async with http.get(f"{server.url}/accounts/visit/") as response:
        assert response.status == 200, await response.text()


async def session_value(http: aiohttp.ClientSession, server: Server, key: str) -> Any:
    async with http.get(f"{server.url}/accounts/session/{key}/") as response:
        assert response.status == 200
        return await response.json()


async def test_cross_site_requests_with_the_session_cookie_reach_no_handler(
    http: aiohttp.ClientSession, server: Server
) -> None:
    """
    A page of another site that learnt a sid: the browser would send the
    user's cookie with its POST, and the handler would act as the user. The
    origin check refuses the POST before any listener runs (``memo``'s
    ``write`` records into the session), and the GET that would read the
    user's events.
    """
    await visit(http, server)
    poll = Polling(http, server)
    await poll.open(Origin=server.url)
    await poll.connect(MEMO)
    [info] = await poll.read(1)
    assert info.startswith(f'42{MEMO},["info",')  # type: ignore[union-attr]
    status, body = await poll.post(f'42{MEMO},1["write","stolen","by evil"]', Origin=EVIL)
    assert (status, error_body(body)) == (403, {"code": 4, "message": "Forbidden"})
    status, body = await poll.get(Origin=EVIL)
    assert (status, error_body(body)) == (403, {"code": 4, "message": "Forbidden"})
    # The same request from the site's own page is handled, after the refused one would have been.
    status, body = await poll.post(f'42{MEMO},2["write","mine","by the page"]', Origin=server.url)
    assert (status, body) == (200, "ok")
    assert await poll.read(1) == [f"43{MEMO},2[null,true]"]
    assert await session_value(http, server, "mine") == "by the page"
    assert await session_value(http, server, "stolen") is None


async def test_channel_route_serves_only_its_namespace(http: aiohttp.ClientSession, server: Server) -> None:
    poll = Polling(http, server, path=f"/socket.io{ECHO}/")
    await poll.open()
    await poll.send(f"40{SYNC},")
    assert await poll.read(1) == [f'44{SYNC},{{"message":"Invalid namespace"}}']
    await poll.connect(ECHO)
    assert await poll.echo(1, "routed") == [None, ["routed"]]
    status, body = await poll.request("GET", f"{server.url}/socket.io/nope/1.0/nope/?EIO=4&transport=polling")
    assert (status, error_body(body)) == (400, {"code": 0, "message": "Transport unknown"})


async def test_session_cookie_over_polling(http: aiohttp.ClientSession, server: Server) -> None:
    # Without a session, a channel that requires one refuses the CONNECT.
    anonymous = Polling(http, server)
    await anonymous.open()
    await anonymous.send(f"40{MEMO},")
    assert await anonymous.read(1) == [
        f'44{MEMO},{{"message":"session required","data":{{"code":"session_required"}}}}'
    ]
    await visit(http, server)
    async with http.post(f"{server.url}/accounts/session/memos/", json=["from the page"]) as response:
        assert response.status == 200
    poll = Polling(http, server)
    await poll.open()
    await poll.connect(MEMO)
    [info] = await poll.read(1)
    assert info == f'42{MEMO},["info",{{"count":1,"user":"AnonymousUser"}}]'
    await poll.send(f'42{MEMO},1["save","from polling"]', f'42{MEMO},2["read","visits"]')
    assert await poll.read(2) == [f'43{MEMO},1[null,{{"count":2}}]', f"43{MEMO},2[null,1]"]
    assert await session_value(http, server, "memos") == ["from the page", "from polling"]


# -- the upgrade -----------------------------------------------------------------------


async def test_upgrade_to_websocket(poll: Polling, server: Server) -> None:
    await poll.connect(ECHO)
    assert await poll.echo(1, "over polling") == [None, ["over polling"]]
    pending = asyncio.create_task(poll.get())
    await asyncio.sleep(0.3)
    assert not pending.done()
    url = f"{server.ws_url}/socket.io/?EIO=4&transport=websocket&sid={poll.sid}"
    async with open_connection(url) as ws:
        await ws.send("2probe")
        assert await asyncio.wait_for(ws.recv(), 2.0) == "3probe"
        # The waiting GET returns, so that the client pauses polling.
        assert await asyncio.wait_for(pending, 2.0) == (200, "6")
        await ws.send("5")
        # The same socket, on the WebSocket: no CONNECT again.
        await ws.send(f'42{ECHO},2["echo","over websocket"]')
        assert await asyncio.wait_for(ws.recv(), 2.0) == f'43{ECHO},2[null,["over websocket"]]'
        await ws.send(f'451-{ECHO},3["echo",{{"_placeholder":true,"num":0}}]')
        await ws.send(b"\x01\x02")
        assert await asyncio.wait_for(ws.recv(), 2.0) == f'461-{ECHO},3[null,[{{"_placeholder":true,"num":0}}]]'
        assert await asyncio.wait_for(ws.recv(), 2.0) == b"\x01\x02"
        # Polling with that sid is over.
        status, body = await poll.get()
        assert status == 400, body
        status, body = await poll.post(f'42{ECHO},4["echo","late"]')
        assert status == 400, body
        # And so is another WebSocket with it.
        async with open_connection(url) as second:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(second.recv(), 2.0)
        # The server's ping now comes over the WebSocket.
        assert await asyncio.wait_for(ws.recv(), PING_INTERVAL + 2) == "2"
        await ws.send("3")
        await ws.send(f'42{ECHO},5["echo","still"]')
        assert await asyncio.wait_for(ws.recv(), 2.0) == f'43{ECHO},5[null,["still"]]'


async def test_failed_probe_leaves_the_client_on_polling(poll: Polling, server: Server) -> None:
    await poll.connect(ECHO)
    url = f"{server.ws_url}/socket.io/?EIO=4&transport=websocket&sid={poll.sid}"
    async with open_connection(url) as ws:
        await ws.send("2nope")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2.0)
    assert await poll.echo(1, "still polling") == [None, ["still polling"]]


# -- heartbeat -------------------------------------------------------------------------


async def test_pongs_over_polling_keep_the_session(http: aiohttp.ClientSession, quick_server: Server) -> None:
    poll = Polling(http, quick_server)
    await poll.open()
    await poll.send("40")
    reply, auth = await poll.read(2)
    assert isinstance(reply, str) and reply.startswith('40{"sid":'), reply
    assert auth == '42["auth",{}]'
    pings = 0
    ending = time.monotonic() + 1.5
    while time.monotonic() < ending:
        status, body = await poll.get()
        assert status == 200, body
        for packet in decode(body):
            if packet == "2":
                pings += 1
                await poll.send("3")
    assert pings >= 3
    await poll.send('42["message","still here"]')
    assert '42["message-back","still here"]' in await poll.read(1)


async def test_client_that_stops_polling_is_closed_by_the_ping_timeout(
    http: aiohttp.ClientSession, quick_server: Server
) -> None:
    since = len(quick_server.log())
    poll = Polling(http, quick_server)
    await poll.open()
    await poll.send("40")
    assert await poll.read(2) != []
    # No more GETs: the ping goes unanswered.
    await assert_logged(quick_server, f"closing {poll.address} (code 4008): ping timeout", since=since)
    status, body = await poll.get()
    assert (status, error_body(body)) == (400, SESSION_ID_UNKNOWN)


# -- capacity --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def capped_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The test project capped at two connections (``settings_cap``): on daphne, then on uvicorn."""
    with run_server(settings="tests.project.settings_cap", server=request.param) as running:
        yield running


async def test_polling_sessions_count_against_max_connections(
    http: aiohttp.ClientSession, capped_server: Server
) -> None:
    since = len(capped_server.log())
    first, second = Polling(http, capped_server), Polling(http, capped_server)
    for admitted in (first, second):
        await admitted.open()
        await admitted.connect(ECHO)
    # Past the cap, over polling: an OPEN packet, then the session is gone.
    third = Polling(http, capped_server)
    await third.open()
    status, body = await third.post(f"40{ECHO},")
    assert status == 400, body
    await assert_session_gone(third)
    # And over WebSocket: closed with "try again later".
    async with wire_client(capped_server.ws_url) as refused:
        assert await refused.wait_closed(timeout=WAIT) in (4013, 1013)
    await assert_logged(capped_server, "connection(s) at MAX_CONNECTIONS (2)", since=since)
    # A polling session that ends frees its slot at once.
    waiting = asyncio.create_task(first.get())
    await asyncio.sleep(0.3)
    await first.send("1")
    assert await asyncio.wait_for(waiting, 2.0) == (200, "6")
    newcomer = Polling(http, capped_server)
    await newcomer.open()
    await newcomer.connect(ECHO)
    assert await newcomer.echo(1, "admitted") == [None, ["admitted"]]
    for client in (second, newcomer):
        await client.send("1")


async def test_idle_polling_sessions_are_reaped(http: aiohttp.ClientSession) -> None:
    """
    ``settings_idle``: from three connections on, a connection idle for half
    a second is disconnected. A polling session is one like any other: its
    waiting GET gets the DISCONNECT, and the session ends.
    """
    with run_server(settings="tests.project.settings_idle") as running:
        polls = [Polling(http, running) for _ in range(3)]
        for poll in polls:
            await poll.open()
            await poll.connect(ECHO)
        for poll in polls:
            assert await poll.read(1, timeout=5.0) == [f"41{ECHO},"]
            await assert_session_gone(poll)
        await assert_logged(running, "idle reaper disconnected 3 connection(s)", since=0)


# -- memory ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_flood_of_posts_into_a_slow_listener_is_paced_and_memory_stays_bounded(kind: str) -> None:
    """
    ``sleep`` holds the listener 20 ms per event. The flooder posts payloads
    of nearly MAX_PAYLOAD, 25,000 events each, the next as soon as the
    previous is answered. A POST's answer waits while the socket's queue is
    long (``pushes_back``), so the events are taken at the listener's pace:
    the queue never reaches ``MAX_QUEUED_EVENTS`` (1000, which would close
    the session) and the server's memory stays bounded. Meanwhile another
    POST on the sid is refused (one POST at a time), and the server serves
    a newcomer.

    A server of its own, so that the events left to handle stay out of the
    other tests.
    """
    event = f'42{ECHO},["sleep",0.02]'
    payload = RS.join([event] * 25_000)
    assert len(payload) < MAX_PAYLOAD
    with run_server(server=kind) as running:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            flooder = Polling(http, running)
            await flooder.open()
            await flooder.connect(ECHO)
            since = len(running.log())
            answered: list[float] = []
            started = time.monotonic()

            async def flood() -> None:
                while True:
                    status, body = await flooder.request("POST", flooder.url, payload)
                    assert (status, body) == (200, "ok"), (status, body[:200])
                    answered.append(time.monotonic() - started)

            watch = RssWatch(serving_pid(running))
            flooding = asyncio.create_task(flood())
            await asyncio.sleep(1.0)
            status, body = await flooder.post(f'42{ECHO},["echo","meanwhile"]')
            assert (status, error_body(body)) == (400, BAD_REQUEST)
            newcomer = Polling(http, running)
            await newcomer.open()
            await newcomer.connect(ECHO)
            assert await newcomer.echo(1, "still serving") == [None, ["still serving"]]
            await asyncio.sleep(4.0)
            grown_kib = await watch.stop()
            flooding.cancel()
            with suppress(asyncio.CancelledError):
                await flooding
            print(f"\n{kind}: flooder answered at {answered}, RSS grew {grown_kib} KiB")
            # At 20 ms an event, the first payload takes over 8 minutes: its answer waits.
            assert answered == []
            assert "faster than its listeners" not in running.log()[since:]
            assert grown_kib < RSS_GROWTH_BOUND_KIB, f"RSS grew by {grown_kib} KiB"


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_client_that_posts_and_never_gets_is_closed_at_max_unread_bytes(kind: str) -> None:
    """
    What a session sends waits for the client's next GET; a client that
    only posts (here 10 KB acks) is closed once more than MAX_UNREAD_BYTES
    (``settings_slow``: 1 MiB) waits unread, as a WebSocket client that
    stops reading is.
    """
    with run_server(settings="tests.project.settings_slow", server=kind) as running:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            poll = Polling(http, running)
            await poll.open()
            await poll.connect(ECHO)
            since = len(running.log())
            text = "z" * 10_000
            for ack_id in range(1, 200):
                status, body = await poll.post(f'42{ECHO},{ack_id}["echo","{text}"]')
                if status != 200:
                    break
                await asyncio.sleep(0.005)  # let the listener answer
            else:
                pytest.fail("the session took 2 MB of acks nobody read")
            assert 100 <= ack_id <= 120, ack_id
            assert (status, error_body(body)) == (400, BAD_REQUEST)
            await assert_logged(running, f"closing {poll.address}", "over MAX_UNREAD_BYTES (1048576)", since=since)


async def test_a_get_the_client_gave_up_leaves_its_packets_for_the_next(poll: Polling, http: aiohttp.ClientSession) -> None:
    """A client that drops a waiting GET loses nothing: the server keeps what that GET would have taken."""
    await poll.connect(ECHO)
    with pytest.raises((asyncio.TimeoutError, aiohttp.ClientError)):
        async with http.get(poll.url, timeout=aiohttp.ClientTimeout(total=0.3)) as response:
            await response.read()
    await asyncio.sleep(0.2)  # the server notices the connection went away
    await poll.send(f'42{ECHO},11["echo","kept"]')
    assert await poll.read(1) == [f'43{ECHO},11[null,["kept"]]']
