"""
What the server does with bad input, over raw WebSocket frames.

Every case must end in a clear error packet or a prompt close with the
documented code and a WARNING in the log, and must leave the server serving
everyone else: each test keeps a healthy connection open alongside the bad
one and checks that it still gets its acks afterwards.

The heartbeat cases run on ``suite_server`` (pingInterval 300 ms,
pingTimeout 200 ms, CONNECT deadline 1 s), the others on the test project's
own settings, which keep heartbeats out of the way (5 s).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.support.wire import WireClient, log_line, open_connection, wire_client

ECHO = "/echo/2.0/echo"
SYNC = "/echo/2.0/sync"
MAX_PAYLOAD = 1_000_000
MAX_ATTACHMENTS = 10

_ack_ids = itertools.count(1)


def placeholder(num: int) -> dict[str, Any]:
    return {"_placeholder": True, "num": num}


def compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def too_big_code(server_name: str) -> int:
    """The "message too big" close code: uvicorn takes RFC 6455's, daphne only 4xxx."""
    return 1009 if server_name == "uvicorn_server" else 4009


@asynccontextmanager
async def echo_client(server: Any) -> AsyncIterator[WireClient]:
    """A connection with ``/echo/2.0/echo`` joined and its ``hello`` read."""
    async with wire_client(server.ws_url, answer_pings=True) as client:
        await client.connect_namespace(ECHO)
        hello = await client.recv()
        assert isinstance(hello, str) and hello.startswith(f'42{ECHO},["hello",'), hello
        yield client


async def assert_echoes(client: WireClient) -> None:
    """The client's ``echo`` on ``/echo/2.0/echo`` is acked with its argument."""
    ack_id = next(_ack_ids)
    await client.send(f'42{ECHO},{ack_id}["echo","still serving"]')
    assert await client.recv() == f'43{ECHO},{ack_id}[null,["still serving"]]'


async def assert_closed_for(server: Any, client: WireClient, code: int, reason: str) -> None:
    """
    The server closes ``client`` promptly with ``code`` and logs ``reason``
    (at WARNING level, which daphne's log format shows); the timeout stays
    well below the 5 s heartbeat, so no ping timeout can stand in for the
    close.
    """
    assert await client.wait_closed(timeout=2.0) == code
    level = "WARNING" if "daphne" in server.process.args else ""
    line = await log_line(server, level, f"closing {client.address} (code ", reason)
    assert line is not None, f"no {level} log line about closing {client.address}: {reason}"


# -- malformed frames --------------------------------------------------------


@pytest.mark.parametrize("frame", ["9", "x", ""], ids=["unknown type 9", "letter", "empty frame"])
async def test_malformed_engine_io_packet_closes_with_protocol_error(daphne_server, frame):
    async with echo_client(daphne_server) as healthy, echo_client(daphne_server) as client:
        await client.send(frame)
        await assert_closed_for(daphne_server, client, 4002, "unexpected Engine.IO packet")
        await assert_echoes(healthy)


async def test_protocol_error_close_code_on_uvicorn(uvicorn_server):
    """Only 4009 and 4013 have RFC stand-ins on uvicorn; a protocol error is 4002 everywhere."""
    async with echo_client(uvicorn_server) as healthy, echo_client(uvicorn_server) as client:
        await client.send("9")
        await assert_closed_for(uvicorn_server, client, 4002, "unexpected Engine.IO packet")
        await assert_echoes(healthy)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        pytest.param("4", "unknown Socket.IO packet type", id="empty packet"),
        pytest.param("47", "unknown Socket.IO packet type", id="unknown type 7"),
        pytest.param(f'42{ECHO},["echo",', "not valid JSON", id="truncated JSON"),
        pytest.param(f"42{ECHO},[NaN]", "not valid JSON", id="NaN"),
        pytest.param(f"40{ECHO},{{token}}", "not valid JSON", id="CONNECT with bad JSON"),
        pytest.param(f"42{ECHO},{{}}", "non-empty array", id="event not an array"),
        pytest.param(f"42{ECHO},[]", "non-empty array", id="event without a name"),
        pytest.param(f'42{ECHO},["connect"]', "reserved event name", id="reserved event"),
        pytest.param(f"42{ECHO},[true]", "event name", id="boolean event name"),
        pytest.param(f"43{ECHO},[1]", "ack without an ack id", id="ack without id"),
        pytest.param(f'40{ECHO},["token"]', "CONNECT payload", id="CONNECT with array"),
        pytest.param(f'41{ECHO},{{"a":1}}', "DISCONNECT carries no payload", id="DISCONNECT with payload"),
        pytest.param(f'44{ECHO},{{"message":"x"}}', "clients do not send", id="CONNECT_ERROR from client"),
        pytest.param(f'42{ECHO},1234567890123456["echo"]', "ack id too large", id="huge ack id"),
    ],
)
async def test_malformed_socket_io_packet_closes_with_protocol_error(daphne_server, frame, reason):
    async with echo_client(daphne_server) as healthy, echo_client(daphne_server) as client:
        await client.send(frame)
        await assert_closed_for(daphne_server, client, 4002, reason)
        await assert_echoes(healthy)


# -- frame size ----------------------------------------------------------------


@pytest.mark.parametrize("server_name", ["daphne_server", "uvicorn_server"])
async def test_text_frame_over_max_payload_closes_as_too_big(request, server_name):
    server = request.getfixturevalue(server_name)
    # Over MAX_PAYLOAD, still under daphne's own 1 MiB message limit.
    head = f'42{ECHO},["echo","'
    frame = head + "a" * (1_000_100 - len(head) - 2) + '"]'
    assert len(frame.encode()) == 1_000_100
    async with echo_client(server) as healthy, echo_client(server) as client:
        await client.send(frame)
        await assert_closed_for(server, client, too_big_code(server_name), "over MAX_PAYLOAD")
        await assert_echoes(healthy)


async def test_text_frame_over_max_payload_in_utf8_bytes_closes_as_too_big(daphne_server):
    """The limit is on bytes: 340,000 three-byte characters are 1,020,000 bytes."""
    frame = f'42{ECHO},["echo","' + "\u20ac" * 340_000 + '"]'
    assert MAX_PAYLOAD < len(frame.encode()) < 1024 * 1024
    async with echo_client(daphne_server) as healthy, echo_client(daphne_server) as client:
        await client.send(frame)
        await assert_closed_for(daphne_server, client, 4009, "over MAX_PAYLOAD")
        await assert_echoes(healthy)


async def test_text_frame_of_exactly_max_payload_is_served(daphne_server):
    ack_id = next(_ack_ids)
    head = f'42{ECHO},{ack_id}["echo","'
    text = "a" * (MAX_PAYLOAD - len(head) - 2)
    async with echo_client(daphne_server) as client:
        await client.send(head + text + '"]')
        ack = await client.recv(timeout=5.0)
        assert ack == f'43{ECHO},{ack_id}[null,["{text}"]]'


@pytest.mark.parametrize("server_name", ["daphne_server", "uvicorn_server"])
async def test_binary_frame_over_max_payload_closes_as_too_big(request, server_name):
    server = request.getfixturevalue(server_name)
    async with echo_client(server) as healthy, echo_client(server) as client:
        await client.send(f"451-{ECHO},{next(_ack_ids)}" + compact(["echo", placeholder(0)]))
        await client.send(b"\x00" * 1_000_100)
        await assert_closed_for(server, client, too_big_code(server_name), "over MAX_PAYLOAD")
        await assert_echoes(healthy)


# -- binary attachments ---------------------------------------------------------


async def test_binary_frame_with_no_placeholder_pending_closes(daphne_server):
    async with echo_client(daphne_server) as healthy, echo_client(daphne_server) as client:
        await client.send(b"\x01\x02\x03")
        await assert_closed_for(daphne_server, client, 4002, "binary frame with no attachment pending")
        await assert_echoes(healthy)


async def test_binary_frame_after_the_packet_completed_closes(daphne_server):
    ack_id = next(_ack_ids)
    async with echo_client(daphne_server) as healthy, echo_client(daphne_server) as client:
        await client.send(f"451-{ECHO},{ack_id}" + compact(["echo", placeholder(0)]), b"\x01", b"\x02")
        await assert_closed_for(daphne_server, client, 4002, "binary frame with no attachment pending")
        await assert_echoes(healthy)


async def test_placeholder_naming_a_missing_attachment_closes(daphne_server):
    async with echo_client(daphne_server) as healthy, echo_client(daphne_server) as client:
        await client.send(f"451-{ECHO}," + compact(["echo", placeholder(1)]), b"\x01")
        await assert_closed_for(daphne_server, client, 4002, "placeholder names no attachment")
        await assert_echoes(healthy)


async def test_attachment_no_placeholder_names_closes(daphne_server):
    async with echo_client(daphne_server) as healthy, echo_client(daphne_server) as client:
        await client.send(f"452-{ECHO}," + compact(["echo", placeholder(0)]), b"\x01", b"\x02")
        await assert_closed_for(daphne_server, client, 4002, "not referenced by any placeholder")
        await assert_echoes(healthy)


async def test_text_frame_while_attachments_are_pending_closes(daphne_server):
    async with echo_client(daphne_server) as healthy, echo_client(daphne_server) as client:
        await client.send(f"451-{ECHO}," + compact(["echo", placeholder(0)]), f'42{ECHO},["echo"]')
        await assert_closed_for(daphne_server, client, 4002, "binary attachments were expected")
        await assert_echoes(healthy)


async def test_attachment_count_over_max_attachments_closes(daphne_server):
    count = MAX_ATTACHMENTS + 1
    header = f"45{count}-{ECHO}," + compact(["echo", *(placeholder(i) for i in range(count))])
    async with echo_client(daphne_server) as healthy, echo_client(daphne_server) as client:
        await client.send(header)
        await assert_closed_for(daphne_server, client, 4002, "over MAX_ATTACHMENTS")
        await assert_echoes(healthy)


async def test_max_attachments_are_served(daphne_server):
    ack_id = next(_ack_ids)
    attachments = [bytes([i]) * 3 for i in range(MAX_ATTACHMENTS)]
    placeholders = [placeholder(i) for i in range(MAX_ATTACHMENTS)]
    async with echo_client(daphne_server) as client:
        await client.send(f"45{MAX_ATTACHMENTS}-{ECHO},{ack_id}" + compact(["echo", *placeholders]))
        await client.send(*attachments)
        frames = await client.recv_many(1 + MAX_ATTACHMENTS)
        assert frames[0] == f"46{MAX_ATTACHMENTS}-{ECHO},{ack_id}" + compact([None, placeholders])
        assert frames[1:] == attachments


# -- namespaces ----------------------------------------------------------------


async def test_unknown_namespace_is_refused_and_connection_stays_usable(daphne_server):
    async with echo_client(daphne_server) as healthy, wire_client(daphne_server.ws_url) as client:
        await client.send("40/nope,")
        assert await client.recv() == '44/nope,{"message":"Invalid namespace"}'
        await client.connect_namespace(ECHO)
        assert (await client.recv()).startswith(f'42{ECHO},["hello",')
        await assert_echoes(client)
        await assert_echoes(healthy)


async def test_event_before_connect_gets_connect_error(daphne_server):
    async with echo_client(daphne_server) as healthy, wire_client(daphne_server.ws_url) as client:
        await client.send(f'42{ECHO},{next(_ack_ids)}["echo","too early"]')
        error = await client.recv()
        assert isinstance(error, str) and error.startswith(f"44{ECHO},"), error
        message = json.loads(error[len(f"44{ECHO},"):])["message"]
        assert "CONNECT first" in message
        await client.connect_namespace(ECHO)
        assert (await client.recv()).startswith(f'42{ECHO},["hello",')
        await assert_echoes(client)
        await assert_echoes(healthy)


# -- timeouts --------------------------------------------------------------------


async def test_missing_pong_closes_with_timeout_code(suite_server):
    async with echo_client(suite_server) as healthy, wire_client(suite_server.ws_url) as client:
        await client.connect_namespace("/custom")
        assert await client.wait_closed(timeout=1.0) == 4008
        assert await log_line(suite_server, "WARNING", f"closing {client.address} (code 4008): ping timeout")
        await assert_echoes(healthy)


async def test_no_connect_in_time_closes_with_timeout_code(suite_server):
    answering = wire_client(suite_server.ws_url, answer_pings=True)
    async with echo_client(suite_server) as healthy, answering as client:
        assert await client.wait_closed(timeout=2.0) == 4008
        reason = f"closing {client.address} (code 4008): no namespace connected in time"
        assert await log_line(suite_server, "WARNING", reason)
        await assert_echoes(healthy)


# -- listeners -------------------------------------------------------------------


async def test_listener_that_raises_acks_internal_error(daphne_server):
    ack_id = next(_ack_ids)
    async with echo_client(daphne_server) as client:
        await client.send(f'42{ECHO},{ack_id}["crash"]')
        error = {"message": "internal error", "code": "internal_error"}
        assert await client.recv() == f"43{ECHO},{ack_id}" + compact([error, None])
        await assert_echoes(client)


async def test_listener_refusal_acks_its_code(daphne_server):
    ack_id = next(_ack_ids)
    async with echo_client(daphne_server) as client:
        await client.send(f'42{ECHO},{ack_id}["fail","E_REFUSED"]')
        error = {"message": "refused on purpose", "code": "E_REFUSED"}
        assert await client.recv() == f"43{ECHO},{ack_id}" + compact([error, None])
        await assert_echoes(client)


async def test_listener_that_never_returns_holds_up_only_its_socket(suite_server):
    """
    On the suite's settings a ping comes every 300 ms and must be answered
    within 200 ms, so the connection staying open shows that its pongs are
    read while the listener sleeps.
    """
    sleep_id, later_id, add_id = next(_ack_ids), next(_ack_ids), next(_ack_ids)
    async with echo_client(suite_server) as healthy, echo_client(suite_server) as client:
        await client.connect_namespace(SYNC)
        await client.send(f'42{ECHO},{sleep_id}["sleep",3600]', f'42{ECHO},{later_id}["echo","later"]')
        with pytest.raises(TimeoutError):
            await client.recv(timeout=0.7)
        await client.send(f'42{SYNC},{add_id}["add",1,2]')
        assert await client.recv() == f'43{SYNC},{add_id}[null,3]'
        await assert_echoes(healthy)
        with pytest.raises(TimeoutError):
            await client.recv(timeout=0.7)
        add_id = next(_ack_ids)
        await client.send(f'42{SYNC},{add_id}["add",2,3]')
        assert await client.recv() == f'43{SYNC},{add_id}[null,5]'


async def test_client_gone_while_its_listener_runs(daphne_server):
    since = len(daphne_server.log())
    async with echo_client(daphne_server) as healthy:
        async with echo_client(daphne_server) as client:
            await client.send(f'42{ECHO},{next(_ack_ids)}["sleep",3600]')
            await asyncio.sleep(0.1)
        assert await log_line(daphne_server, client.address, "WSDISCONNECT", since=since)
        await assert_echoes(healthy)
    assert "Traceback" not in daphne_server.log()[since:]


# -- origin ----------------------------------------------------------------------


async def test_foreign_origin_is_refused_at_handshake(daphne_server):
    url = f"{daphne_server.ws_url}/socket.io/?EIO=4&transport=websocket"
    async with echo_client(daphne_server) as healthy:
        with pytest.raises(InvalidStatus) as refused:
            async with open_connection(url, origin="http://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        assert await log_line(daphne_server, "WARNING", "foreign origin 'http://evil.example'")
        await assert_echoes(healthy)


@pytest.mark.parametrize("same_origin", [True, False], ids=["same origin", "no origin"])
async def test_own_origin_and_no_origin_are_accepted(daphne_server, same_origin):
    origin = f"http://127.0.0.1:{daphne_server.port}" if same_origin else None
    async with wire_client(daphne_server.ws_url, origin=origin) as client:
        assert client.handshake["maxPayload"] == MAX_PAYLOAD
        await client.connect_namespace(ECHO)
        assert (await client.recv()).startswith(f'42{ECHO},["hello",')
        await assert_echoes(client)
