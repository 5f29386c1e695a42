"""
The official JavaScript client (socket.io-client, under node) against a real
daphne serving the test project.

Each test runs one scenario of ``tests/js/conformance.mjs``, which prints what
the client observed as JSON lines; the assertions are here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.node import requires_node, run_node
from tests.support.servers import Server, run_server

pytestmark = [pytest.mark.node, requires_node]


def observe(scenario: str, server: Server) -> dict[str, dict[str, Any]]:
    """What the client saw in ``scenario``, by step name."""
    steps: dict[str, dict[str, Any]] = {}
    for line in run_node("conformance.mjs", scenario, server.url):
        assert line["step"] not in steps, f"step {line['step']!r} reported twice"
        steps[line["step"]] = line
    return steps


def test_hello_on_connect(daphne_server: Server) -> None:
    steps = observe("hello", daphne_server)
    assert steps["hello"]["args"] == [{"message": "Hello Sockets!", "channel": "/echo/2.0/echo"}]


def test_acks_are_error_first(daphne_server: Server) -> None:
    steps = observe("acks", daphne_server)
    assert steps["echo"]["reply"] == [None, [1, "two", {"three": [3]}]]
    assert steps["fail"]["reply"] == [{"message": "refused on purpose", "code": "refused_code"}, None]
    assert steps["crash"]["reply"] == [{"message": "internal error", "code": "internal_error"}, None]
    # DEBUG is off: the exception's text stays on the server.
    assert "secret detail" not in json.dumps(steps["crash"])


def test_binary_round_trip(daphne_server: Server) -> None:
    steps = observe("binary", daphne_server)
    sent = steps["sent"]["args"]
    assert sent[0]["buffer"] == {"$bytes": [0, 1, 2, 254, 255]}
    assert steps["echo"]["reply"] == [None, sent]


def test_two_channels_share_one_connection(daphne_server: Server) -> None:
    steps = observe("multiplex", daphne_server)
    engines = steps["engines"]
    assert engines["same_manager"] is True
    assert engines["echo_engine"] and engines["echo_engine"] == engines["sync_engine"]
    assert engines["echo_socket"] != engines["sync_socket"]
    assert steps["echo"]["reply"] == [None, ["over one connection"]]
    assert steps["add"]["reply"] == [None, 5]


def test_server_calls_the_client(daphne_server: Server) -> None:
    steps = observe("call", daphne_server)
    assert steps["ask"]["reply"] == [None, "answer to life"]


def test_unknown_namespace_is_refused(daphne_server: Server) -> None:
    steps = observe("unknown_namespace", daphne_server)
    assert steps["nope"]["connected"] is False
    assert steps["nope"]["message"] == "Invalid namespace"


def test_channel_route_serves_only_its_channel(daphne_server: Server) -> None:
    steps = observe("channel_route", daphne_server)
    assert steps["echo_on_its_route"]["reply"] == [None, ["routed"]]
    assert steps["sync_on_its_route"]["reply"] == [None, 42]
    assert steps["sync_on_echo_route"]["connected"] is False
    assert steps["sync_on_echo_route"]["message"] == "Invalid namespace"


def test_authorize_refuses(daphne_server: Server) -> None:
    steps = observe("authorize", daphne_server)
    assert steps["bad_token"]["connected"] is False
    assert steps["bad_token"]["message"] == "not authorized"


def test_server_side_disconnect(daphne_server: Server) -> None:
    steps = observe("server_disconnect", daphne_server)
    # The reason after which the official client does not reconnect by itself.
    assert steps["disconnect"]["reason"] == "io server disconnect"
    assert steps["disconnect"]["active"] is False


def test_cross_origin_handshake_is_refused(daphne_server: Server) -> None:
    refusal = "foreign origin 'http://evil.example'"
    refusals_before = daphne_server.log().count(refusal)
    steps = observe("origin", daphne_server)
    assert steps["foreign_origin"]["connected"] is False
    assert steps["foreign_origin"]["connected_after"] is False
    assert steps["same_origin"]["connected"] is True
    # Refused by the origin check, not by something else on the way.
    assert daphne_server.log().count(refusal) > refusals_before


@pytest.fixture(scope="module")
def polling_first_server() -> Iterator[Server]:
    """The test project on uvicorn with http_application(): long-polling answered before Django."""
    with run_server(server="uvicorn", application="tests.project.asgi_polling_first:application") as server:
        yield server


@pytest.mark.parametrize("server", ["daphne_server", "uvicorn_server", "polling_first_server"])
def test_default_options_connect_over_polling_and_upgrade(server: str, request: pytest.FixtureRequest) -> None:
    steps = observe("polling", request.getfixturevalue(server))
    assert steps["default_transports"]["connected"] is True
    assert steps["default_transports"]["transport"] == "polling"
    assert steps["hello"]["args"] == [{"message": "Hello Sockets!", "channel": "/echo/2.0/echo"}]
    assert steps["echo"]["reply"] == [None, [1, "two", {"$bytes": [0, 1, 255]}]]
    assert steps["upgraded"]["transport"] == "websocket"
    assert steps["echo_after_upgrade"]["reply"] == [None, ["after"]]
    assert steps["polling_only"]["connected"] is True
    assert steps["polling_only"]["transport"] == "polling"
    assert steps["echo_polling_only"]["reply"] == [None, ["polled", {"$bytes": [7, 0]}]]  # base64 over polling
