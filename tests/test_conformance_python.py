"""
python-socketio's ``AsyncClient`` against a real server serving the test
project: a Socket.IO client that shares no code with rain_ws.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from tests.support.servers import Server

ECHO = "/echo/2.0/echo"
SYNC = "/echo/2.0/sync"
WAIT = 10.0


@pytest.fixture
async def client() -> AsyncIterator[socketio.AsyncClient]:
    """A client that does not reconnect, disconnected after the test."""
    client = socketio.AsyncClient(reconnection=False)
    yield client
    await client.disconnect()


@pytest.fixture(params=["daphne_server", "uvicorn_server"])
def any_server(request: pytest.FixtureRequest) -> Server:
    """The test project on daphne, then on uvicorn."""
    return request.getfixturevalue(request.param)


async def connect(
    client: socketio.AsyncClient,
    server: Server,
    *namespaces: str,
    transports: list[str] | None = ["websocket"],  # noqa: B006 - never changed
    **options: Any,
) -> None:
    """Connect ``client`` to ``namespaces``; ``transports=None`` for the client's default (polling, then the upgrade)."""
    await asyncio.wait_for(
        client.connect(server.url, namespaces=list(namespaces), transports=transports, wait_timeout=WAIT, **options),
        WAIT,
    )


def first(client: socketio.AsyncClient, event: str, namespace: str) -> asyncio.Future[Any]:
    """A future for the first ``event`` on ``namespace``; register it before connecting."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def handler(*args: Any) -> None:
        if not future.done():
            future.set_result(args)

    client.on(event, handler, namespace=namespace)
    return future


async def call(client: socketio.AsyncClient, event: str, *args: Any, namespace: str = ECHO) -> Any:
    return await client.call(event, args, namespace=namespace, timeout=WAIT)


async def test_hello_and_ack(client: socketio.AsyncClient, any_server: Server) -> None:
    hello = first(client, "hello", ECHO)
    await connect(client, any_server, ECHO)
    assert await asyncio.wait_for(hello, WAIT) == ({"message": "Hello Sockets!", "channel": ECHO},)
    # An ack with several arguments comes back as a tuple: error first.
    assert await call(client, "echo", 1, "two", {"three": [3]}) == (None, [1, "two", {"three": [3]}])


async def test_error_acks(client: socketio.AsyncClient, daphne_server: Server) -> None:
    await connect(client, daphne_server, ECHO)
    assert await call(client, "fail", "refused_code") == (
        {"message": "refused on purpose", "code": "refused_code"},
        None,
    )
    crash = await call(client, "crash")
    assert crash == ({"message": "internal error", "code": "internal_error"}, None)
    assert "secret detail" not in repr(crash)


async def test_binary_round_trip(client: socketio.AsyncClient, daphne_server: Server) -> None:
    await connect(client, daphne_server, ECHO)
    payload = {"blob": b"\x00\x01\xfe\xff", "list": [b"hi", "text", {"deep": b"\x7f" * 300}]}
    assert await call(client, "echo", payload, b"top") == (None, [payload, b"top"])


async def test_two_namespaces_on_one_connection(client: socketio.AsyncClient, daphne_server: Server) -> None:
    await connect(client, daphne_server, ECHO, SYNC)
    assert set(client.namespaces) == {ECHO, SYNC}
    assert client.get_sid(ECHO) != client.get_sid(SYNC)
    assert client.transport() == "websocket"
    assert await call(client, "echo", "shared") == (None, ["shared"])
    assert await call(client, "add", 2, 3, namespace=SYNC) == (None, 5)


async def test_server_calls_the_client(client: socketio.AsyncClient, daphne_server: Server) -> None:
    @client.on("question", namespace=ECHO)
    async def question(asked: str) -> str:
        return "answer to " + asked

    await connect(client, daphne_server, ECHO)
    assert await call(client, "ask", "life") == (None, "answer to life")


async def test_unknown_namespace_is_refused(client: socketio.AsyncClient, daphne_server: Server) -> None:
    refusal = first(client, "connect_error", "/nope")
    with pytest.raises(socketio.exceptions.ConnectionError, match="/nope"):
        await connect(client, daphne_server, "/nope")
    assert await asyncio.wait_for(refusal, WAIT) == ({"message": "Invalid namespace"},)


async def test_channel_route(daphne_server: Server) -> None:
    own = socketio.AsyncClient(reconnection=False)
    foreign = socketio.AsyncClient(reconnection=False)
    refusal = first(foreign, "connect_error", SYNC)
    try:
        await connect(own, daphne_server, ECHO, socketio_path="/socket.io/echo/2.0/echo/")
        assert await call(own, "echo", "routed") == (None, ["routed"])
        with pytest.raises(socketio.exceptions.ConnectionError):
            await connect(foreign, daphne_server, SYNC, socketio_path="/socket.io/echo/2.0/echo/")
        assert await asyncio.wait_for(refusal, WAIT) == ({"message": "Invalid namespace"},)
    finally:
        await own.disconnect()
        await foreign.disconnect()


async def test_authorize_refuses(client: socketio.AsyncClient, daphne_server: Server) -> None:
    refusal = first(client, "connect_error", ECHO)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await connect(client, daphne_server, ECHO, auth={"token": "bad"})
    assert await asyncio.wait_for(refusal, WAIT) == ({"message": "not authorized", "data": {"code": "not_authorized"}},)


async def test_server_side_disconnect(client: socketio.AsyncClient, daphne_server: Server) -> None:
    disconnected = first(client, "disconnect", ECHO)
    await connect(client, daphne_server, ECHO)
    await client.emit("bye", namespace=ECHO)
    assert await asyncio.wait_for(disconnected, WAIT) == ("server disconnect",)


async def test_cross_origin_handshake_is_refused(client: socketio.AsyncClient, daphne_server: Server) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await connect(client, daphne_server, ECHO, headers={"Origin": "http://evil.example"})
    assert not client.connected
    same_origin = socketio.AsyncClient(reconnection=False)
    try:
        await connect(same_origin, daphne_server, ECHO, headers={"Origin": daphne_server.url})
        assert await call(same_origin, "echo", "same origin") == (None, ["same origin"])
    finally:
        await same_origin.disconnect()


async def test_empty_bytes_round_trip_on_uvicorn(client: socketio.AsyncClient, uvicorn_server: Server) -> None:
    await connect(client, uvicorn_server, ECHO)
    assert await call(client, "echo", b"", [b"x"]) == (None, [b"", [b"x"]])


async def test_empty_bytes_on_daphne_get_a_clear_error_ack(
    client: socketio.AsyncClient, daphne_server: Server
) -> None:
    # daphne drops empty binary frames, so the server refuses to send one
    # rather than leave the client waiting for an attachment that never comes.
    await connect(client, daphne_server, ECHO)
    error, result = await call(client, "echo", b"")
    assert result is None
    assert error["code"] == "unserializable"
    assert "daphne" in error["message"]
    # The connection is still in order afterwards.
    assert await call(client, "echo", b"\x01") == (None, [b"\x01"])


# -- HTTP long-polling -------------------------------------------------------------


async def test_long_polling_only(client: socketio.AsyncClient, any_server: Server) -> None:
    hello = first(client, "hello", ECHO)
    await connect(client, any_server, ECHO, SYNC, transports=["polling"])
    assert client.transport() == "polling"
    assert await asyncio.wait_for(hello, WAIT) == ({"message": "Hello Sockets!", "channel": ECHO},)
    assert await call(client, "echo", 1, "two", {"three": [3]}) == (None, [1, "two", {"three": [3]}])
    assert await call(client, "add", 2, 3, namespace=SYNC) == (None, 5)
    # Binary both ways, as base64 in the long-polling payloads.
    payload = {"blob": bytes(range(256)), "list": [b"hi", "text", {"deep": b"\x7f" * 300}]}
    assert await call(client, "echo", payload, b"top", b"") == (None, [payload, b"top", b""])
    assert await call(client, "fail", "refused_code") == ({"message": "refused on purpose", "code": "refused_code"}, None)
    assert client.transport() == "polling"


async def test_long_polling_then_the_upgrade(client: socketio.AsyncClient, any_server: Server) -> None:
    """With its default transports, the client connects over long-polling, then upgrades to WebSocket."""

    @client.on("question", namespace=ECHO)
    async def question(asked: str) -> str:
        return "answer to " + asked

    hello = first(client, "hello", ECHO)
    await connect(client, any_server, ECHO, transports=None)
    assert await asyncio.wait_for(hello, WAIT) == ({"message": "Hello Sockets!", "channel": ECHO},)
    assert await call(client, "echo", "before or during the upgrade") == (None, ["before or during the upgrade"])
    deadline = asyncio.get_running_loop().time() + WAIT
    while client.transport() != "websocket":
        assert asyncio.get_running_loop().time() < deadline, f"still on {client.transport()}"
        await asyncio.sleep(0.05)
    assert await call(client, "echo", "upgraded", b"\x00\x01") == (None, ["upgraded", b"\x00\x01"])
    assert await call(client, "ask", "life") == (None, "answer to life")
