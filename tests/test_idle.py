"""
The idle reaper on a real server (daphne, ``tests/project/settings_idle.py``):
from 3 connections on, a check every 0.2 s disconnects every connection that
has been idle for 0.5 s.

Idle means no Socket.IO packet either way; a listener still running, a
``socket.call`` still waiting for its ack, or the server pushing events keeps
a connection. Reaped clients get a server-side DISCONNECT, so the official
clients do not reconnect by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.node import requires_node, run_node
from tests.support.recording import Active, RecordingClient, until
from tests.support.scrape import scrape, wait_for_connections
from tests.support.servers import Server, run_server

ECHO = "/echo/2.0/echo"
PUSH = "/pusher/1.0/push"
#: IDLE_TIME plus five checks: anything the reaper would do has happened.
SETTLE = 1.5
#: Five checks: time for a client to come back if it were going to.
FIVE_CHECKS = 1.0


@pytest.fixture(scope="module")
def idle_server() -> Iterator[Server]:
    with run_server(settings="tests.project.settings_idle") as server:
        yield server


@pytest.fixture
async def server(idle_server: Server) -> Server:
    """The server, once the connections of earlier tests are gone: every test counts from zero."""
    await wait_for_connections(idle_server, 0)
    return idle_server


async def test_idle_clients_are_reaped_at_the_threshold_and_stay_away(
    server: Server, clients: list[RecordingClient]
) -> None:
    idle = [RecordingClient(ECHO), RecordingClient(ECHO)]
    clients.extend(idle)
    for client in idle:
        await client.connect(server)
    reaped_before = (await scrape(server)).value("rain_ws_reaped_total")

    # Two connections, below the threshold of 3: idle, but left alone.
    await asyncio.sleep(SETTLE)
    assert all(client.sio.connected for client in idle)
    metrics = await scrape(server)
    assert metrics.value("rain_ws_connections") == 2
    assert metrics.value("rain_ws_idle_connections") == 2
    assert metrics.value("rain_ws_reaped_total") == reaped_before

    # A third, active connection reaches the threshold: the idle two go.
    active_client = RecordingClient(ECHO)
    clients.append(active_client)
    await active_client.connect(server)
    active = Active(active_client)
    for client in idle:
        await until(lambda client=client: client.disconnects, "the idle client's disconnect")
    assert [client.disconnects for client in idle] == [["server disconnect"]] * 2

    # They do not come back, and the active client never noticed.
    await asyncio.sleep(FIVE_CHECKS)
    assert [len(client.named("connect")) for client in idle] == [1, 1]
    assert not any(client.sio.connected for client in idle)
    metrics = await scrape(server)
    assert metrics.value("rain_ws_connections") == 1
    assert metrics.value("rain_ws_reaped_total") == reaped_before + 2
    assert await active.stop() > 0
    assert active_client.disconnects == []


@pytest.mark.node
@requires_node
async def test_official_js_client_is_reaped_and_does_not_reconnect(server: Server) -> None:
    steps = {line["step"]: line for line in await asyncio.to_thread(run_node, "idle.mjs", "reaped", server.url)}
    assert steps["below_threshold"] == {"step": "below_threshold", "connected": [True, True], "connections": 2}
    idle = steps["idle"]
    # The reason after which socket.io-client does not reconnect by itself.
    assert idle["reasons"] == [["io server disconnect"]] * 2
    assert idle["connects"] == [1, 1]
    assert idle["connected"] == [False, False]
    assert idle["active"] == [False, False]
    active = steps["active"]
    assert active["connected"] is True
    assert active["acks"] > 0 and active["all_acks_right"] is True
    assert active["connections"] == 1


async def test_running_listener_pending_call_and_server_pushes_keep_a_connection(
    server: Server, clients: list[RecordingClient]
) -> None:
    # Two active clients keep the process at the threshold whatever is reaped.
    keepers = [RecordingClient(ECHO), RecordingClient(ECHO)]
    idle, sleeper = RecordingClient(ECHO), RecordingClient(ECHO)
    asker, pushed = RecordingClient(PUSH), RecordingClient(PUSH)
    clients.extend((*keepers, idle, sleeper, asker, pushed))
    release = asyncio.Event()

    async def question(asked: str) -> str:
        await release.wait()
        return "answer to " + asked

    asker.sio.on("question", question, namespace=PUSH)
    for client in (*keepers, idle, sleeper, asker, pushed):
        await client.connect(server)
    active = [Active(client) for client in keepers]

    # A listener that runs for 1.5 s, a server call the client answers after
    # 1.5 s, and 15 server pushes 0.1 s apart: three times IDLE_TIME without
    # a packet from these clients.
    sleeping = asyncio.ensure_future(sleeper.call("sleep", 1.5))
    assert await asker.call("ask_later", "life") == (None, True)
    assert await pushed.call("stream", 15, 10, 0.1) == (None, 15)

    # The plain idle client shows the reaper is at work meanwhile.
    await until(lambda: idle.disconnects, "the idle client's disconnect")
    assert idle.disconnects == ["server disconnect"]

    # Each got through: a reaped socket's listener is cancelled, its call
    # fails and its pushes stop.
    assert await asyncio.wait_for(sleeping, 5) == (None, 1.5)
    assert sleeper.disconnects == []
    release.set()
    await until(lambda: asker.named("answer"), "the answer event")
    await until(lambda: pushed.named("pushed"), "the end of the pushes")
    assert asker.named("answer") == [("answer", "answer to life")]
    assert [entry[1] for entry in pushed.named("data")] == list(range(15))

    # Once quiet, each is idle like any other connection.
    for client in (sleeper, asker, pushed):
        await until(lambda client=client: client.disconnects, "the disconnect once quiet")
        assert client.disconnects == ["server disconnect"]
    reaped = ("disconnect", "server disconnect")
    assert asker.index(("answer", "answer to life")) < asker.index(reaped)
    assert pushed.index(("pushed", 15)) < pushed.index(reaped)
    for loop in active:
        assert await loop.stop() > 0
    assert [client.disconnects for client in keepers] == [[], []]
