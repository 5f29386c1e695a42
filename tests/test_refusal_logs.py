"""
Refused clients are logged where a developer sees them, one line each, and
a flood of refusals does not flood the log.
"""

import logging

import pytest

from rain_ws.refusals import RefusalLog
from tests.support.servers import run_server
from tests.support.wire import log_line, wire_client

MEMO = "/memo/1.0/memo"


async def test_a_fresh_project_shows_why_a_client_was_refused():
    # No LOGGING for rain_ws: only WARNING lines reach the console (Python's
    # last-resort handler), as under a fresh project's runserver.
    with run_server(settings="tests.project.settings_no_logging") as server:
        async with wire_client(server.ws_url) as client:
            await client.send(f"40{MEMO},")
            reply = await client.recv()
            assert reply.startswith(f"44{MEMO},")
            line = await log_line(server, "refused", client.address, MEMO, "session required")
            assert line is not None, server.log()[-2000:]


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_past_the_burst_refusals_are_counted_and_the_count_is_logged_later(caplog: pytest.LogCaptureFixture):
    clock = Clock()
    log = RefusalLog(burst=3, interval=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="rain_ws"):
        for number in range(8):
            log.refused("refused client %d", number)
        assert [record.getMessage() for record in caplog.records] == [f"refused client {n}" for n in range(3)]
        clock.now += 10
        log.refused("refused client %d", 8)
    assert [record.getMessage() for record in caplog.records][3:] == [
        "5 more refusal(s) not logged in the 10 s before (at most 3 lines per 10 s)",
        "refused client 8",
    ]
