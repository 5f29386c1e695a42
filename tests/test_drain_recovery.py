"""
A graceful drain with connection state recovery on, end to end: 200 official
socket.io-client sockets on process A, all in one room, while a publisher on
process B says a numbered sequence to that room at a steady rate; then
``manage.py rain_ws_drain --pid A``. The sockets are closed in batches over
the drain, reconnect to B a batch at a time, are recovered there (same id,
``socket.recovered``) and have every number exactly once and in order,
including those said while they were away.

Where a reconnect goes: each client is one Manager (one engine session),
whose ``uri`` ``tests/js/drain.mjs`` switches to B when its connection
closes. That stands in for a load balancer which takes A out of its
rotation when the drain begins (A refuses new connections from then on
anyway). The reconnect delay is fixed (200 ms, no randomization), so that
the reconnects follow the drain's batches rather than the client's backoff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import pytest

from rain_ws.layer import process_of

from tests.support.node import JS_DIR, requires_node
from tests.support.redis import RedisServer, run_redis
from tests.support.servers import ROOT, Server, run_server

SETTINGS = "tests.project.settings_drain_recovery"
SOCKETS = 200
DRAIN_INTERVAL = 0.5  # s, as in SETTINGS (DRAIN_BATCH 25: 8 batches)
PUBLISH_EVERY_MS = 50
RECONNECT_DELAY_MS = 200
# Closes of one batch go out in one go; batches are DRAIN_INTERVAL / 2 apart at least.
BATCH_GAP_MS = 100
SERVICE_RESTART = {"daphne": 4012, "uvicorn": 1012}

pytestmark = requires_node


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with run_redis() as running:
        yield running


def drain(redis: RedisServer, pid: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "RAIN_WS_REDIS_URL": redis.url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "django", "rain_ws_drain", "--pid", str(pid)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def run_clients(a: Server, b: Server, redis: RedisServer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run tests/js/drain.mjs, drain A once it is ready; what it said when ready, and its result."""
    command = [
        "node", str(JS_DIR / "drain.mjs"), a.url, b.url,
        str(SOCKETS), str(PUBLISH_EVERY_MS), str(RECONNECT_DELAY_MS),
    ]
    node = subprocess.Popen(command, cwd=JS_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with ThreadPoolExecutor(1) as reader:
            first = reader.submit(node.stdout.readline).result(timeout=30)  # type: ignore[union-attr]
            ready = json.loads(first) if first.strip() else {}
            if ready.get("step") != "ready":
                node.kill()
                out, err = node.communicate()
                pytest.fail(f"drain.mjs did not get ready: {first}{out}\nstderr:\n{err}")
        drained = drain(redis, a.process.pid)
        assert drained.returncode == 0, drained.stdout + drained.stderr
        out, err = node.communicate(timeout=60)
    finally:
        if node.poll() is None:
            node.kill()
            node.communicate()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert lines and lines[-1]["step"] == "result", f"exit {node.returncode}\n{out}\nstderr:\n{err}"
    result = lines[-1]
    assert result["error"] is None and node.returncode == 0, (
        f"{result['error']} (exit {node.returncode})\n{summary(result)}\nstderr:\n{err}\n"
        f"A's log (tail):\n{a.log()[-3000:]}\nB's log (tail):\n{b.log()[-3000:]}"
    )
    return ready, result


def batches(moments: list[float]) -> list[list[float]]:
    """``moments`` (ms) grouped where they are more than BATCH_GAP_MS apart."""
    grouped: list[list[float]] = []
    for moment in sorted(moments):
        if grouped and moment - grouped[-1][-1] <= BATCH_GAP_MS:
            grouped[-1].append(moment)
        else:
            grouped.append([moment])
    return grouped


def missed(result: dict[str, Any], socket: dict[str, Any]) -> int:
    """How many numbers were said while ``socket`` was away (between its close and its reconnect)."""
    if not socket["disconnects"] or not socket["connects"]:
        return 0
    away, back = socket["disconnects"][0]["at"], socket["connects"][0]["at"]
    return sum(1 for said in result["published"] if away < said < back)


def summary(result: dict[str, Any]) -> str:
    """The timing of the drain and the reconnects, and how many sockets are off in which way."""
    sockets = result["sockets"]
    closes = [socket["disconnects"][0]["at"] for socket in sockets if socket["disconnects"]]
    reconnects = [socket["connects"][0]["at"] for socket in sockets if socket["connects"]]
    lines = [f"{len(sockets)} sockets, {len(result['published'])} numbers said, last {result['last']}"]
    if closes:
        lines.append(
            "closes by batch (start ms: count): "
            + ", ".join(f"{batch[0]:.0f}: {len(batch)}" for batch in batches(closes))
        )
    if reconnects:
        lines.append(
            f"reconnects from {min(reconnects):.0f} to {max(reconnects):.0f} ms, by batch: "
            + ", ".join(f"{batch[0]:.0f}: {len(batch)}" for batch in batches(reconnects))
        )
        away = sorted(
            socket["connects"][0]["at"] - socket["disconnects"][0]["at"]
            for socket in sockets
            if socket["connects"] and socket["disconnects"]
        )
        if away:
            lines.append(
                f"away (ms): min {away[0]:.0f}, median {away[len(away) // 2]:.0f}, max {away[-1]:.0f}; "
                f"numbers said while away: {sum(missed(result, socket) for socket in sockets)}"
            )
    expected = list(range(1, (result["last"] or 0) + 1))
    lines.append(
        f"not recovered: {sum(1 for s in sockets if not any(c['recovered'] for c in s['connects']))}, "
        f"not every number once in order: {sum(1 for s in sockets if s['received'] != expected)}"
    )
    return "\n".join(lines)


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
def test_a_drain_moves_every_socket_to_the_other_process_with_nothing_lost(kind: str, redis: RedisServer) -> None:
    env = {"RAIN_WS_REDIS_URL": redis.url}
    with ExitStack() as servers:
        a = servers.enter_context(run_server(settings=SETTINGS, server=kind, env=env))
        b = servers.enter_context(run_server(settings=SETTINGS, server=kind, env=env))
        ready, result = run_clients(a, b, redis)
    print(f"\n{kind}:\n{summary(result)}")

    assert ready["servers"] == [f"{a.host}:{a.port}"]
    sockets = result["sockets"]
    assert len(sockets) == SOCKETS
    # Their ids name A, where they were made; the publisher's names B.
    assert {process_of(socket["id"]) for socket in sockets} == {process_of(sockets[0]["id"])}
    assert process_of(sockets[0]["id"]) != process_of(result["publisher"])
    last = result["last"]
    expected = list(range(1, last + 1))
    for socket in sockets:
        # Closed once, by the drain, with "service restart"; back once, on B, as itself.
        assert [(d["reason"], d["code"]) for d in socket["disconnects"]] == [
            ("transport close", SERVICE_RESTART[kind])
        ], socket["disconnects"]
        [back] = socket["connects"]
        assert back["recovered"] is True, (socket["id"], back)
        assert back["id"] == socket["id"]
        assert back["server"] == f"{b.host}:{b.port}"
        assert socket["received"] == expected, (socket["id"], socket["received"])

    # B holds them all now (and the publisher), as sockets of its own.
    assert result["stats"]["sockets"] == SOCKETS + 1, result["stats"]

    # The sequence went on while the sockets were away: their numbers came from the replay.
    assert sum(missed(result, socket) for socket in sockets) >= SOCKETS

    # The reconnects follow the drain's batches, spread over the drain.
    closes = [socket["disconnects"][0]["at"] for socket in sockets]
    reconnects = [socket["connects"][0]["at"] for socket in sockets]
    assert len(batches(closes)) >= 3, summary(result)
    assert len(batches(reconnects)) >= 3, summary(result)
    assert max(reconnects) - min(reconnects) >= 2 * DRAIN_INTERVAL * 1000, summary(result)
