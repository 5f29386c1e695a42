"""The process-wide heartbeat, with stand-in connections."""

import asyncio
import gc
import weakref

from rain_ws.heartbeat import Heartbeat


class Connection:
    def __init__(self) -> None:
        self.closed = False
        self.pongs = 0
        self.namespaces_joined = True
        self.awaiting_connect = False
        self.pings: list[float] = []
        self.expired: list[str] = []

    def heartbeat_ping(self) -> int:
        self.pings.append(asyncio.get_running_loop().time())
        self.pongs += 1  # answers at once
        return len(self.pings)

    def expire(self, reason: str) -> None:
        self.expired.append(reason)


async def test_a_connection_added_while_the_task_sleeps_long_is_pinged_on_time():
    heartbeat = Heartbeat(interval=0.1, timeout=0.05, connect_timeout=30)
    first = Connection()
    heartbeat.add(first)
    await asyncio.sleep(0.05)
    first.closed = True
    # Only the first connection's CONNECT deadline is left: the task sleeps
    # until it, 30 s away.
    await asyncio.sleep(0.3)
    second = Connection()
    added = asyncio.get_running_loop().time()
    heartbeat.add(second)
    await asyncio.sleep(0.25)
    assert second.pings and second.pings[0] - added < 0.2


class Silent(Connection):
    def heartbeat_ping(self) -> int:
        self.pings.append(asyncio.get_running_loop().time())
        return len(self.pings)  # never answers


async def test_a_missing_pong_expires_the_connection():
    heartbeat = Heartbeat(interval=0.05, timeout=0.05, connect_timeout=30)
    silent = Silent()
    heartbeat.add(silent)
    await asyncio.sleep(0.2)
    assert silent.expired[:1] == ["ping timeout"]


async def test_no_connect_in_time_expires_the_connection():
    heartbeat = Heartbeat(interval=10, timeout=10, connect_timeout=0.05)
    lonely = Connection()
    lonely.namespaces_joined = False
    heartbeat.add(lonely)
    await asyncio.sleep(0.15)
    assert lonely.expired == ["no namespace connected in time"]


async def test_a_connection_that_left_every_namespace_must_connect_again_in_time():
    heartbeat = Heartbeat(interval=10, timeout=10, connect_timeout=0.05)
    connection = Connection()
    heartbeat.add(connection)
    await asyncio.sleep(0.1)
    assert connection.expired == []
    connection.namespaces_joined = False
    heartbeat.expect_connect(connection)
    heartbeat.expect_connect(connection)  # one deadline at a time
    assert len(heartbeat._connects) == 1
    await asyncio.sleep(0.15)
    assert connection.expired == ["no namespace connected in time"]


async def test_connections_that_went_away_are_not_kept_alive():
    heartbeat = Heartbeat(interval=10, timeout=10, connect_timeout=10)
    gone = Connection()
    heartbeat.add(gone)
    ref = weakref.ref(gone)
    del gone
    gc.collect()
    assert ref() is None
