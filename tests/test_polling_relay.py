"""
Long-polling across two processes without sticky sessions, at the wire: a
session made on one process is served by the other through the channel
layer, and its WebSocket upgrade on the other is relayed to its owner.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.support.redis import run_redis
from tests.support.servers import Server, run_server
from tests.support.wire import open_connection

ECHO = "/echo/2.0/echo"
QUERY = "/socket.io/?EIO=4&transport=polling"


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Server, Server]]:
    with run_redis() as redis, ExitStack() as stack:
        env = {"RAIN_WS_REDIS_URL": redis.url}
        first = stack.enter_context(run_server(settings="tests.project.settings_redis_pubsub", env=env))
        second = stack.enter_context(run_server(settings="tests.project.settings_redis_pubsub", env=env))
        yield first, second


def http(server: Server, query: str, body: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(server.url + query, data=None if body is None else body.encode(), method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


async def call(server: Server, query: str, body: str | None = None) -> tuple[int, str]:
    return await asyncio.to_thread(http, server, query, body)


def handshake(server: Server) -> str:
    status, body = http(server, QUERY)
    assert status == 200 and body.startswith("0"), body
    return json.loads(body[1:])["sid"]


async def test_a_session_made_on_one_process_is_served_by_the_other(pair):
    first, second = pair
    sid = await asyncio.to_thread(handshake, first)
    session = f"{QUERY}&sid={sid}"
    assert await call(second, session, f"40{ECHO},") == (200, "ok")
    status, body = await call(second, session)
    assert status == 200 and body.startswith(f"40{ECHO},"), body
    hello = body if "hello" in body else (await call(first, session))[1]
    assert f'42{ECHO},["hello"' in hello
    assert await call(first, session, f'42{ECHO},7["echo","relayed",{{"n":1}}]') == (200, "ok")
    status, body = await call(second, session)
    assert body == f'43{ECHO},7[null,["relayed",{{"n":1}}]]'


async def test_a_made_up_sid_is_refused_at_once(pair):
    first, _ = pair
    started = time.monotonic()
    status, body = await call(first, f"{QUERY}&sid=0123abcd.madeupmadeupmadeupmade.0000000000000000")
    assert (status, json.loads(body)) == (400, {"code": 1, "message": "Session ID unknown"})
    assert time.monotonic() - started < 1


async def test_the_websocket_upgrade_on_the_other_process_is_relayed_to_the_owner(pair):
    first, second = pair
    sid = await asyncio.to_thread(handshake, first)
    session = f"{QUERY}&sid={sid}"
    assert await call(first, session, f"40{ECHO},") == (200, "ok")
    status, body = await call(first, session)
    assert body.startswith(f"40{ECHO},")
    async with open_connection(f"{second.ws_url}/socket.io/?EIO=4&transport=websocket&sid={sid}") as ws:
        await ws.send("2probe")
        assert await asyncio.wait_for(ws.recv(), 5) == "3probe"
        await ws.send("5")
        await ws.send(f'42{ECHO},9["echo","over the relay",{{"x":[1,2]}}]')
        frames = []
        while not any(frame.startswith(f"43{ECHO},9") for frame in frames):
            frames.append(await asyncio.wait_for(ws.recv(), 5))
        assert f'43{ECHO},9[null,["over the relay",{{"x":[1,2]}}]]' in frames
        await ws.send(f'452-{ECHO},10["echo",{{"_placeholder":true,"num":0}},{{"_placeholder":true,"num":1}}]')
        await ws.send(b"\x00\x01")
        await ws.send(b"\xff")
        answer = []
        while len(answer) < 3:
            frame = await asyncio.wait_for(ws.recv(), 5)
            if frame != "2":
                answer.append(frame)
        assert answer == [f'462-{ECHO},10[null,[{{"_placeholder":true,"num":0}},{{"_placeholder":true,"num":1}}]]', b"\x00\x01", b"\xff"]
    # After the upgrade, long-polling on that sid is over.
    status, _ = await call(first, session)
    assert status == 400
