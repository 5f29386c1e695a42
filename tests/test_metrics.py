"""
The metrics view (``rain_ws.views.metrics``, routed at ``/metrics/`` by the
test project) on a real daphne with every limit small
(``tests/project/settings_metrics.py``): its Prometheus text counts what the
clients did, and the reaper logs one line per sweep that reaps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.recording import WAIT, Active, RecordingClient, until
from tests.support.scrape import Scrape, scrape, wait_for_connections
from tests.support.servers import Server, run_server
from tests.support.stalled import StalledClient
from tests.support.wire import ENGINE_IO_QUERY, log_line, open_connection

ECHO = "/echo/2.0/echo"
SYNC = "/echo/2.0/sync"
PUSH = "/pusher/1.0/push"


@pytest.fixture(scope="module")
def metrics_server() -> Iterator[Server]:
    with run_server(settings="tests.project.settings_metrics") as server:
        yield server


@pytest.fixture
async def server(metrics_server: Server) -> Server:
    """The server, once the connections of earlier tests are gone."""
    await wait_for_connections(metrics_server, 0)
    return metrics_server


def grown(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    """How much a sample grew between two scrapes; a sample not yet there counts as 0."""
    key = (name, frozenset(labels.items()))
    return after.samples[key] - before.samples.get(key, 0.0)


async def test_counts_follow_what_clients_did(server: Server, clients: list[RecordingClient]) -> None:
    before = await scrape(server)
    echo, sync = RecordingClient(ECHO), RecordingClient(SYNC)
    clients.extend((echo, sync))
    await echo.connect(server)
    await sync.connect(server)
    await until(lambda: echo.named("hello"), "the hello event")

    for number in range(3):
        assert await echo.call("echo", number) == (None, [number])
    assert (await echo.call("fail", "nope"))[0]["code"] == "nope"
    assert (await echo.call("crash"))[0]["code"] == "internal_error"
    assert await echo.call("sleep", 0.3) == (None, 0.3)
    assert await sync.call("add", 2, 3) == (None, 5)

    after = await scrape(server)
    assert after.content_type.startswith("text/plain")
    assert "# TYPE rain_ws_connections gauge" in after.text
    assert after.value("rain_ws_connections") == 2
    assert after.value("rain_ws_sockets", channel=ECHO) == 1
    assert after.value("rain_ws_sockets", channel=SYNC) == 1
    # Six events in; out, the hello and six acks.
    assert grown(after, before, "rain_ws_events_in_total", channel=ECHO) == 6
    assert grown(after, before, "rain_ws_events_out_total", channel=ECHO) == 7
    assert grown(after, before, "rain_ws_events_in_total", channel=SYNC) == 1
    assert grown(after, before, "rain_ws_events_out_total", channel=SYNC) == 1
    # A RainError is an answer, not an error; the ZeroDivisionError is.
    assert grown(after, before, "rain_ws_handler_errors_total", channel=ECHO) == 1
    assert grown(after, before, "rain_ws_handler_errors_total", channel=SYNC) == 0

    # Every listener is timed, the 0.3 s sleep above the 0.25 s bucket.
    latency = "rain_ws_listener_seconds"
    assert grown(after, before, latency + "_count", channel=ECHO) == 6
    assert grown(after, before, latency + "_bucket", channel=ECHO, le="+Inf") == 6
    assert grown(after, before, latency + "_bucket", channel=ECHO, le="0.25") == 5
    assert grown(after, before, latency + "_sum", channel=ECHO) >= 0.3
    assert grown(after, before, latency + "_count", channel=SYNC) == 1

    await echo.close()
    await sync.close()
    gone = await wait_for_connections(server, 0)
    assert gone.value("rain_ws_sockets", channel=ECHO) == 0
    assert gone.value("rain_ws_sockets", channel=SYNC) == 0


async def test_each_sweep_that_reaps_is_counted_and_logged_once(
    server: Server, clients: list[RecordingClient]
) -> None:
    log_start = len(server.log())
    before = await scrape(server)
    idle = [RecordingClient(ECHO), RecordingClient(ECHO)]
    clients.extend(idle)
    for client in idle:
        await client.connect(server)
    # Both idle well before the threshold is reached, so that one sweep
    # takes both.
    await asyncio.sleep(1.0)
    active_client = RecordingClient(ECHO)
    clients.append(active_client)
    await active_client.connect(server)
    active = Active(active_client)
    for client in idle:
        await until(lambda client=client: client.disconnects, "the idle client's disconnect")
    await asyncio.sleep(0.5)
    assert await active.stop() > 0

    assert grown(await scrape(server), before, "rain_ws_reaped_total") == 2
    lines = [line for line in server.log()[log_start:].splitlines() if "idle reaper" in line]
    assert lines == ["INFO rain_ws: idle reaper disconnected 2 connection(s) idle for 0.5s; 1 remain"]


async def test_refusals_are_counted(server: Server, clients: list[RecordingClient]) -> None:
    before = await scrape(server)
    busy = [RecordingClient(ECHO) for _ in range(3)]
    clients.extend(busy)
    for client in busy:
        await client.connect(server)
    # Listeners running on all three: none is idle, none can make room.
    sleeping = [asyncio.ensure_future(client.call("sleep", 1.0)) for client in busy]
    async with open_connection(f"{server.ws_url}/socket.io/?{ENGINE_IO_QUERY}") as refused:
        await refused.wait_closed()
        assert refused.close_code == 4013
    assert await asyncio.wait_for(asyncio.gather(*sleeping), WAIT) == [(None, 1.0)] * 3
    assert grown(await scrape(server), before, "rain_ws_refused_total") == 1


async def test_slow_closes_are_counted(server: Server) -> None:
    before = await scrape(server)
    stalled = await StalledClient.open(server, PUSH)
    try:
        await stalled.emit(PUSH, "stream", 200, 64 * 1024, 0)
        assert await log_line(server, f"closing {stalled.address}", "client not reading", timeout=WAIT)
        after = await wait_for_connections(server, 0)
    finally:
        stalled.close()
    assert grown(after, before, "rain_ws_slow_closed_total") == 1
