"""
Connection state recovery end to end: the official socket.io-client under
node (tests/js/recovery.mjs) against real daphne and uvicorn processes
sharing a real Redis (RedisPubSubChannelLayer).

A socket loses its connection; while it is gone it is sent room events,
events to its id, a broadcast from ``manage.py announce`` and binary events;
it comes back to the same process or to the other one. A recovered socket
has its id and rooms and gets every event it missed once, in order; one that
cannot be recovered (past the window, after a logout, past its log's bound)
gets a fresh socket and none of what it missed, and the server says why.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.support.node import requires_node, run_node
from tests.support.redis import RedisServer, run_redis
from tests.support.scrape import _get as fetch_metrics
from tests.support.servers import ROOT, Server, run_server

pytestmark = requires_node

SETTINGS = "tests.project.settings_recovery"
SMALL_LOG_SETTINGS = "tests.project.settings_recovery_small"
NOT_RECOVERED = "not recovered, a fresh socket instead: "


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


def start(stack: ExitStack, redis: RedisServer, settings: str, *kinds: str, window: str = "30") -> list[Server]:
    env = {"RAIN_WS_REDIS_URL": redis.url, "RAIN_WS_RECOVERY_WINDOW": window}
    return [stack.enter_context(run_server(settings, kind, env=env)) for kind in kinds]


@pytest.fixture(scope="module")
def daphnes(redis: RedisServer) -> Iterator[list[Server]]:
    with ExitStack() as stack:
        yield start(stack, redis, SETTINGS, "daphne", "daphne")


@pytest.fixture(scope="module")
def uvicorns(redis: RedisServer) -> Iterator[list[Server]]:
    with ExitStack() as stack:
        yield start(stack, redis, SETTINGS, "uvicorn", "uvicorn")


def run(scenario: str, servers: list[Server], redis: RedisServer, target: str, **options: Any) -> list[dict[str, Any]]:
    """Run a scenario of recovery.mjs with A and B (the victim starts on A and comes back to ``target``)."""
    a, b = servers
    config = {
        "a": a.url,
        "b": b.url,
        "target": target,
        "python": sys.executable,
        "root": str(ROOT),
        "env": {
            "DJANGO_SETTINGS_MODULE": options.pop("settings", SETTINGS),
            "PYTHONPATH": str(ROOT),
            "RAIN_WS_REDIS_URL": redis.url,
        },
        **options,
    }
    return run_node("recovery.mjs", scenario, json.dumps(config), timeout=40)


def steps(output: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in output if line["step"] == name]


def step(output: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = steps(output, name)
    assert len(found) == 1, (name, output)
    return found[0]


def received(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The events as (event, *args), every one with an offset of its own."""
    offsets = [event["offset"] for event in events]
    assert None not in offsets, events
    assert len(set(offsets)) == len(offsets), f"an offset came twice: {events}"
    return [(event["event"], *event["args"]) for event in events]


def binary(tag: str) -> dict[str, list[int]]:
    return {"$bytes": [ord(tag), 0, 255]}


def missed(tag: str) -> list[tuple[Any, ...]]:
    """What recovery.mjs's gapEvents sends, as the victim receives it."""
    return [
        ("said", f"{tag}1", "pB"),
        ("whispered", f"{tag}2", "pA"),
        ("announced", f"{tag}3"),
        ("said", binary(tag), "pB"),
        ("whispered", f"{tag}5", "pB"),
        ("said", f"{tag}6", "pA"),
    ]


FINISH = [("whispered", "after", "pA"), ("said", "end", "pB")]
RECOVERED = {"recovered": True, "same_id": True}
#: What recovery.mjs's victims keep in socket.data (a recovery brings it back, across processes too).
NOTE = {"name": "victim", "tags": [1, 2]}


def assert_recovered(back: dict[str, Any]) -> None:
    assert {key: back[key] for key in RECOVERED} == RECOVERED, back
    assert "ROOM" in back["rooms"], back
    assert back["note"] == NOTE, back


def assert_fresh(back: dict[str, Any]) -> None:
    assert back["recovered"] is False and back["same_id"] is False, back
    assert "ROOM" not in back["rooms"], back
    assert back["note"] is None, back


def wait_for_log(server: Server, text: str) -> str:
    """The server's log once it holds ``text`` (it is written as the server handles the CONNECT)."""
    deadline = time.monotonic() + 5
    while text not in server.log():
        assert time.monotonic() < deadline, f"{text!r} not in the log:\n{server.log()[-3000:]}"
        time.sleep(0.05)
    return server.log()


@pytest.mark.parametrize(
    ("kind", "target", "polling"),
    [
        ("daphnes", "a", False),
        ("daphnes", "b", False),
        ("daphnes", "a", True),
        ("uvicorns", "a", False),
        ("uvicorns", "b", True),
    ],
    ids=[
        "daphne-same-process",
        "daphne-other-process",
        "daphne-same-process-polling",
        "uvicorn-same-process",
        "uvicorn-other-process-polling",
    ],
)
def test_every_missed_event_once_in_order(
    request: pytest.FixtureRequest, redis: RedisServer, kind: str, target: str, polling: bool
) -> None:
    output = run("gap", request.getfixturevalue(kind), redis, target, polling=polling)
    # The engine was closed under the socket: no namespace DISCONNECT was sent.
    assert step(output, "dropped")["reason"] == "forced close"
    assert_recovered(step(output, "back"))
    assert received(step(output, "events")["events"]) == [("said", "before", "pB"), *missed("m"), *FINISH]


def test_nothing_received_before_the_cut(daphnes: list[Server], redis: RedisServer) -> None:
    output = run("zero", daphnes, redis, "b")
    assert step(output, "before_drop") == {"step": "before_drop", "events": 0, "offset": None}
    assert_recovered(step(output, "back"))
    assert received(step(output, "events")["events"]) == [*missed("m"), *FINISH]


def test_three_recoveries_in_a_row(uvicorns: list[Server], redis: RedisServer) -> None:
    output = run("thrice", uvicorns, redis, "b")
    backs = steps(output, "back")
    assert [back["round"] for back in backs] == [1, 2, 3]
    for back in backs:
        assert_recovered(back)
    expected: list[tuple[Any, ...]] = [("said", "before", "pA")]
    for round in (1, 2, 3):
        expected += [
            ("said", f"r{round}-room", "pB"),
            ("whispered", f"r{round}-whisper", "pB" if round % 2 else "pA"),
            ("said", f"r{round}-room-again", "pA"),
            ("said", f"r{round}-live", "pA"),
        ]
    assert received(step(output, "events")["events"]) == [*expected, *FINISH]


@pytest.fixture(scope="module")
def short_window(redis: RedisServer) -> Iterator[list[Server]]:
    """A daphne and a uvicorn that keep a gone socket for 2 s."""
    with ExitStack() as stack:
        yield start(stack, redis, SETTINGS, "daphne", "uvicorn", window="2")


@pytest.mark.parametrize("target", ["a", "b"], ids=["same-process", "other-process"])
def test_past_the_window_a_fresh_socket(short_window: list[Server], redis: RedisServer, target: str) -> None:
    output = run("late", short_window, redis, target, wait_ms=3000)
    assert_fresh(step(output, "back"))
    # None of what it missed, nor what its old room got since.
    assert received(step(output, "events")["events"]) == [("whispered", "end", "pA")]
    # The process it came back to says why; the other one, which held the
    # socket, told it the socket is gone.
    server = short_window[1] if target == "b" else short_window[0]
    lines = [line for line in wait_for_log(server, NOT_RECOVERED).splitlines() if NOT_RECOVERED in line]
    assert lines
    for line in lines:
        assert NOT_RECOVERED + "no socket of that pid here: over RECOVERY_WINDOW (2 s)" in line


def test_logout_while_gone_a_fresh_socket(daphnes: list[Server], redis: RedisServer) -> None:
    before = fetch_metrics(daphnes[1])
    output = run("logout", daphnes, redis, "b")
    after = fetch_metrics(daphnes[1])
    first, second = steps(output, "back")
    # With the same session, it is recovered...
    assert_recovered(first)
    assert step(output, "logged_out")["status"] == 200
    # ...once it has ended, it is not.
    assert_fresh(second)
    assert received(step(output, "events")["events"]) == [("whispered", "end", "pA")]
    assert NOT_RECOVERED + "it belonged to another Django session" in wait_for_log(daphnes[1], NOT_RECOVERED)
    # The process both reconnects reached counted one of each.
    assert after.value("rain_ws_recovered_total") - before.value("rain_ws_recovered_total") == 1
    assert after.value("rain_ws_not_recovered_total") - before.value("rain_ws_not_recovered_total") == 1


@pytest.mark.parametrize(
    ("kind", "target"), [("daphnes", "a"), ("uvicorns", "b")], ids=["same-process", "other-process"]
)
def test_reconnect_one_millisecond_after_the_cut(
    request: pytest.FixtureRequest, redis: RedisServer, kind: str, target: str
) -> None:
    output = run("quick", request.getfixturevalue(kind), redis, target)
    assert_recovered(step(output, "back"))
    stream = [("said", f"b{index}", "pA") for index in range(1, step(output, "dropped")["sent"] + 1)]
    assert received(step(output, "events")["events"]) == [*stream, *FINISH]


@pytest.mark.parametrize(
    ("kind", "target"), [("uvicorns", "a"), ("daphnes", "b")], ids=["same-process", "other-process"]
)
def test_a_connection_not_yet_seen_gone_is_taken_over(
    request: pytest.FixtureRequest, redis: RedisServer, kind: str, target: str
) -> None:
    output = run("takeover", request.getfixturevalue(kind), redis, target)
    assert_recovered(step(output, "back"))
    # The old connection, reading again, finds its namespace disconnected by the server.
    assert step(output, "old_disconnected")["reason"] == "io server disconnect"
    gap = [("said", "g1", "pB"), ("whispered", "g2", "pA"), ("whispered", "g3", "pB")]
    # The new one got what the old one had not read, once, then the rest.
    assert received(step(output, "events")["events"]) == [*gap, *FINISH]
    # The server still wrote to the old one, until it took the socket away.
    assert received(step(output, "old_events")["events"]) == [("said", "before", "pB"), *gap]


@pytest.mark.parametrize("target", ["a", "b"], ids=["same-process", "other-process"])
def test_more_missed_than_the_log_keeps_a_fresh_socket(redis: RedisServer, target: str) -> None:
    with ExitStack() as stack:
        servers = start(stack, redis, SMALL_LOG_SETTINGS, "daphne", "uvicorn")
        output = run("overflow", servers, redis, target, settings=SMALL_LOG_SETTINGS)
        fits, over = steps(output, "back")
        # Five missed events fit in the log: all of them come back.
        assert_recovered(fits)
        fits_events, over_events = (line["events"] for line in steps(output, "events"))
        assert received(fits_events) == [("said", f"f{index}", "pB") for index in range(1, 6)] + [
            ("said", "fend", "pB")
        ]
        # Ten do not: a fresh socket, not a replay with a hole in it.
        assert_fresh(over)
        assert received(over_events) == [("whispered", "end", "pA")]
        # The process the client came back to says why.
        log = wait_for_log(servers[1] if target == "b" else servers[0], NOT_RECOVERED)
        assert NOT_RECOVERED + "it missed more than its log keeps" in log
