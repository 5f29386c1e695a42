"""
``manage.py rain_ws_drain`` against real server processes on Redis: the
process asked refuses new connections and closes its own in jittered
batches with "service restart" (1012, 4012 on daphne), never with a
Socket.IO DISCONNECT, so that clients reconnect elsewhere; the others go on.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.redis import RedisServer, run_redis
from tests.support.servers import ROOT, Server, run_server
from tests.support.wire import wire_client

SETTINGS = "tests.project.settings_drain"
ECHO = "/echo/2.0/echo"
CLIENTS = 30  # three batches of DRAIN_BATCH (10), DRAIN_INTERVAL (0.3 s) or so apart
SERVICE_RESTART = {"daphne": 4012, "uvicorn": 1012}


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with run_redis() as running:
        yield running


def drain(redis: RedisServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "RAIN_WS_REDIS_URL": redis.url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "django", "rain_ws_drain", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def polling_handshake(server: Server) -> int:
    try:
        with urllib.request.urlopen(f"{server.url}/socket.io/?EIO=4&transport=polling", timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_drained_process_closes_its_connections_in_batches_and_refuses_new_ones(
    kind: str, redis: RedisServer
) -> None:
    env = {"RAIN_WS_REDIS_URL": redis.url}
    with ExitStack() as servers:
        drained = servers.enter_context(run_server(settings=SETTINGS, server=kind, env=env))
        other = servers.enter_context(run_server(settings=SETTINGS, server=kind, env=env))
        async with AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(wire_client(drained.ws_url, answer_pings=True)) for _ in range(CLIENTS)
            ]
            survivor = await stack.enter_async_context(wire_client(other.ws_url, answer_pings=True))
            for client in [*clients, survivor]:
                await client.connect_namespace(ECHO)

            async def closed(client):  # the close code, when, and every frame before it
                frames = []
                while True:
                    try:
                        frames.append(await client.recv_raw(timeout=15))
                    except Exception as error:
                        return getattr(error, "code", None), time.monotonic(), frames

            watching = asyncio.gather(*(closed(client) for client in clients))
            result = await asyncio.to_thread(drain, redis, "--pid", str(drained.process.pid))
            assert result.returncode == 0, result.stdout + result.stderr
            assert f"process {drained.process.pid}" in result.stdout
            outcomes = await watching
            await survivor.send(f'42{ECHO},1["echo","still here"]')
            while (frame := await survivor.recv()).startswith(f'42{ECHO},["hello"'):
                pass
            assert frame == f'43{ECHO},1[null,["still here"]]'
        codes = {code for code, _, _ in outcomes}
        assert codes == {SERVICE_RESTART[kind]}, codes
        # Never a Socket.IO DISCONNECT: official clients would not reconnect after one.
        assert not any(frame.startswith(f"41{ECHO}") for _, _, frames in outcomes for frame in frames if isinstance(frame, str))
        moments = sorted(when for _, when, _ in outcomes)
        assert moments[-1] - moments[0] > 0.3, "the closes were not spread over batches"

        # The drained process refuses new connections; the other serves them.
        assert await asyncio.to_thread(polling_handshake, drained) == 503
        with pytest.raises((InvalidStatus, ConnectionClosed, AssertionError, OSError)):
            async with wire_client(drained.ws_url) as refused:
                await refused.connect_namespace(ECHO)
        assert await asyncio.to_thread(polling_handshake, other) == 200


def test_without_a_layer_across_processes_the_command_says_why() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.project.settings", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "django", "rain_ws_drain", "--all"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "channels-redis" in result.stderr
