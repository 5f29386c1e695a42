"""
A socket the idle reaper disconnected, with ``RECOVERY_WINDOW`` on: the
official client does not reconnect by itself after the server's DISCONNECT,
and when the application calls ``socket.connect()`` it gets its socket back
(its id and room) with the room events sent while it was down, once each.
(``rain.js`` reconnects on the next emit: tests/test_browser_recovery.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.node import requires_node, run_node
from tests.support.servers import Server, run_server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server(settings="tests.project.settings_idle_recovery") as running:
        yield running


@pytest.mark.node
@requires_node
async def test_a_reaped_socket_reconnected_by_the_application_gets_what_it_missed(server: Server) -> None:
    steps = {line["step"]: line for line in await asyncio.to_thread(run_node, "idle.mjs", "recovered", server.url)}
    reaped = steps["reaped"]
    assert reaped["reasons"] == [["io server disconnect"]] * 3
    assert reaped["connected"] == [False, False, False]
    back = steps["back"]
    assert back["recovered"] is True and back["speaker_recovered"] is True
    assert back["same_id"] is True
    assert back["rooms"] == [None, ["r"]]
    # Each listener sees the text, the sender's id and the offset; the text is enough here.
    assert back["heard"] == ["m1", "m2"]
