"""
The WebSocket behaviour the official Socket.IO protocol test suite checks,
frame by frame, against the suite's handlers (``tests.project.suite``) served
with the suite's settings: pingInterval 300 ms, pingTimeout 200 ms, a
CONNECT deadline of 1 s.

Where the official suite only requires a malformed packet to end the
connection eventually (a ping timeout would do), these tests require the
protocol-error close, 4002, and that it comes at once, from a client that
keeps answering pings.
"""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus

from tests.support.wire import WireClient, log_line, open_connection, wire_client

PLACEHOLDER_0 = {"_placeholder": True, "num": 0}
PLACEHOLDER_1 = {"_placeholder": True, "num": 1}


def decode(frame: str | bytes, prefix: str) -> object:
    """The JSON after ``prefix`` in a text frame that must start with it."""
    assert isinstance(frame, str) and frame.startswith(prefix), frame
    return json.loads(frame[len(prefix):])


async def connect_main(client: WireClient) -> str:
    """CONNECT to ``/`` and read the ``auth`` event its handler emits; return the sid."""
    sid = await client.connect_namespace("/")
    assert await client.recv() == '42["auth",{}]'
    return sid


# -- Engine.IO handshake ---------------------------------------------------


async def test_open_packet_announces_the_session(suite_server):
    async with wire_client(suite_server.ws_url) as client:
        handshake = client.handshake
    assert set(handshake) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(handshake["sid"], str) and handshake["sid"]
    assert handshake["upgrades"] == []
    assert handshake["pingInterval"] == 300
    assert handshake["pingTimeout"] == 200
    assert handshake["maxPayload"] == 1_000_000


async def test_each_session_gets_its_own_sid(suite_server):
    async with wire_client(suite_server.ws_url) as first, wire_client(suite_server.ws_url) as second:
        assert first.handshake["sid"] != second.handshake["sid"]


@pytest.mark.parametrize(
    "query",
    [
        "transport=websocket",
        "EIO=abc&transport=websocket",
        "EIO=3&transport=websocket",
        "EIO=4",
        "EIO=4&transport=abc",
        "EIO=4&transport=polling",
    ],
)
async def test_invalid_engine_io_query_is_refused(suite_server, query):
    with pytest.raises(InvalidStatus) as refused:
        async with open_connection(f"{suite_server.ws_url}/socket.io/?{query}"):
            pass
    assert refused.value.response.status_code == 403


# -- Heartbeat ---------------------------------------------------------------


async def test_answered_pings_keep_the_session(suite_server):
    async with wire_client(suite_server.ws_url) as client:
        await connect_main(client)
        for _ in range(3):
            assert await client.recv_raw(timeout=1.0) == "2"
            await client.send("3")
        await client.send('42["message","still here"]')
        assert await client.recv(timeout=1.0) == '42["message-back","still here"]'


async def test_unanswered_ping_closes_the_session(suite_server):
    async with wire_client(suite_server.ws_url) as client:
        await connect_main(client)
        assert await client.wait_closed(timeout=2.0) == 4008
    assert await log_line(suite_server, "WARNING", f"closing {client.address} (code 4008): ping timeout")


# -- Close -------------------------------------------------------------------


async def test_close_packet_ends_the_session(suite_server):
    async with wire_client(suite_server.ws_url, answer_pings=True) as client:
        await client.send("1")
        assert await client.wait_closed(timeout=1.0) == 1000


# -- Connect -----------------------------------------------------------------


async def test_connect_to_main_namespace(suite_server):
    async with wire_client(suite_server.ws_url) as client:
        await client.send("40")
        reply = decode(await client.recv(), "40")
        assert isinstance(reply, dict) and set(reply) == {"sid"}
        assert isinstance(reply["sid"], str) and reply["sid"]
        assert await client.recv() == '42["auth",{}]'


async def test_connect_to_main_namespace_with_auth(suite_server):
    async with wire_client(suite_server.ws_url) as client:
        await client.send('40{"token":"123"}')
        reply = decode(await client.recv(), "40")
        assert isinstance(reply, dict) and set(reply) == {"sid"}
        assert decode(await client.recv(), "42") == ["auth", {"token": "123"}]


async def test_connect_to_custom_namespace(suite_server):
    async with wire_client(suite_server.ws_url) as client:
        await client.send("40/custom,")
        reply = decode(await client.recv(), "40/custom,")
        assert isinstance(reply, dict) and set(reply) == {"sid"}
        assert await client.recv() == '42/custom,["auth",{}]'


async def test_connect_to_custom_namespace_with_auth(suite_server):
    async with wire_client(suite_server.ws_url) as client:
        await client.send('40/custom,{"token":"abc"}')
        reply = decode(await client.recv(), "40/custom,")
        assert isinstance(reply, dict) and set(reply) == {"sid"}
        assert decode(await client.recv(), "42/custom,") == ["auth", {"token": "abc"}]


async def test_connect_to_unknown_namespace_is_refused(suite_server):
    async with wire_client(suite_server.ws_url) as client:
        await client.send("40/random")
        assert await client.recv() == '44/random,{"message":"Invalid namespace"}'


async def test_invalid_connect_packet_closes_at_once(suite_server):
    async with wire_client(suite_server.ws_url, answer_pings=True) as client:
        await client.send("4abc")
        assert await client.wait_closed(timeout=0.8) == 4002


async def test_no_connect_in_time_closes_the_session(suite_server):
    async with wire_client(suite_server.ws_url, answer_pings=True) as client:
        assert await client.wait_closed(timeout=2.5) == 4008
    reason = f"closing {client.address} (code 4008): no namespace connected in time"
    assert await log_line(suite_server, "WARNING", reason)


# -- Disconnect --------------------------------------------------------------


async def test_disconnect_from_main_namespace_sends_nothing_back(suite_server):
    async with wire_client(suite_server.ws_url) as client:
        await connect_main(client)
        await client.send("41")
        assert await client.recv_raw(timeout=1.0) == "2"
        await client.send("3")
        await client.send('42["message","after disconnect"]')
        assert await client.recv_raw(timeout=1.0) == '44{"message":"not connected to /: send CONNECT first","data":{"code":"not_connected"}}'


async def test_disconnect_from_custom_namespace_keeps_the_main_one(suite_server):
    async with wire_client(suite_server.ws_url, answer_pings=True) as client:
        await connect_main(client)
        await client.connect_namespace("/custom")
        assert await client.recv() == '42/custom,["auth",{}]'
        await client.send("41/custom")
        await client.send('42["message","message to main namespace"]')
        assert await client.recv() == '42["message-back","message to main namespace"]'


# -- Messages ----------------------------------------------------------------


async def test_event_is_echoed(suite_server):
    async with wire_client(suite_server.ws_url, answer_pings=True) as client:
        await connect_main(client)
        await client.send('42["message",1,"2",{"3":[true]}]')
        assert await client.recv() == '42["message-back",1,"2",{"3":[true]}]'


async def test_binary_event_is_echoed(suite_server):
    async with wire_client(suite_server.ws_url, answer_pings=True) as client:
        await connect_main(client)
        header = "452-" + json.dumps(["message", PLACEHOLDER_0, PLACEHOLDER_1], separators=(",", ":"))
        await client.send(header, b"\x01\x02\x03", b"\x04\x05\x06")
        frames = await client.recv_many(3)
        assert decode(frames[0], "452-") == ["message-back", PLACEHOLDER_0, PLACEHOLDER_1]
        assert frames[1:] == [b"\x01\x02\x03", b"\x04\x05\x06"]


async def test_event_with_ack(suite_server):
    async with wire_client(suite_server.ws_url, answer_pings=True) as client:
        await connect_main(client)
        await client.send('42456["message-with-ack",1,"2",{"3":[false]}]')
        assert await client.recv() == '43456[1,"2",{"3":[false]}]'


async def test_binary_event_with_ack(suite_server):
    async with wire_client(suite_server.ws_url, answer_pings=True) as client:
        await connect_main(client)
        header = "452-789" + json.dumps(
            ["message-with-ack", PLACEHOLDER_0, PLACEHOLDER_1], separators=(",", ":")
        )
        await client.send(header, b"\x01\x02\x03", b"\x04\x05\x06")
        frames = await client.recv_many(3)
        assert decode(frames[0], "462-789") == [PLACEHOLDER_0, PLACEHOLDER_1]
        assert frames[1:] == [b"\x01\x02\x03", b"\x04\x05\x06"]


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("4abc", id="unknown packet type"),
        pytest.param("42{}", id="payload not an array"),
        pytest.param('42abc["message"]', id="invalid ack id"),
    ],
)
async def test_malformed_packet_closes_at_once(suite_server, frame):
    async with wire_client(suite_server.ws_url, answer_pings=True) as client:
        await connect_main(client)
        await client.send(frame)
        assert await client.wait_closed(timeout=1.0) == 4002
    assert await log_line(suite_server, "WARNING", f"closing {client.address} (code 4002)")
