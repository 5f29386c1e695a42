"""The process-wide heartbeat, with stand-in connections and a clock the tests move."""

import asyncio
import gc
import weakref

from rain_ws.heartbeat import PINGS_PER_TURN, Heartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Connection:
    def __init__(self, answers: bool = True) -> None:
        self.closed = False
        self.pongs = 0
        self.namespaces_joined = True
        self.awaiting_connect = False
        self.empty_since = 0.0
        self.answers = answers
        self.pings = 0
        self.expired: list[str] = []

    def heartbeat_ping(self) -> int:
        self.pings += 1
        if self.answers:
            self.pongs += 1
        return self.pings

    def expire(self, reason: str) -> None:
        self.expired.append(reason)
        self.closed = True


async def test_pings_come_every_interval_and_a_missing_pong_expires_the_connection():
    clock = Clock()
    heartbeat = Heartbeat(interval=25, timeout=20, connect_timeout=45, clock=clock)
    answering, silent = Connection(), Connection(answers=False)
    heartbeat.add(answering)
    heartbeat.add(silent)
    clock.now += 24.9
    assert heartbeat.tick() is not None
    assert (answering.pings, silent.pings) == (0, 0)
    clock.now += 0.1
    heartbeat.tick()
    assert (answering.pings, silent.pings) == (1, 1)
    clock.now += 19.9
    heartbeat.tick()
    assert silent.expired == []
    clock.now += 0.1
    heartbeat.tick()
    assert silent.expired == ["ping timeout"]
    clock.now += 5
    heartbeat.tick()
    assert answering.pings == 2 and answering.expired == []


async def test_no_connect_in_time_expires_the_connection():
    clock = Clock()
    heartbeat = Heartbeat(interval=100, timeout=100, connect_timeout=5, clock=clock)
    lonely = Connection()
    lonely.namespaces_joined = False
    heartbeat.add(lonely)
    clock.now += 4.9
    heartbeat.tick()
    assert lonely.expired == []
    clock.now += 0.1
    heartbeat.tick()
    assert lonely.expired == ["no namespace connected in time"]


async def test_a_connection_that_left_every_namespace_gets_the_whole_connect_timeout_again():
    clock = Clock()
    heartbeat = Heartbeat(interval=100, timeout=100, connect_timeout=5, clock=clock)
    connection = Connection()
    heartbeat.add(connection)
    clock.now += 5
    heartbeat.tick()  # connected in time: the first deadline passes
    assert connection.expired == [] and not connection.awaiting_connect

    clock.now += 1
    connection.namespaces_joined = False
    heartbeat.expect_connect(connection)
    clock.now += 3
    connection.namespaces_joined = True  # connects again...
    clock.now += 1
    connection.namespaces_joined = False  # ...and leaves again, 4 s after the first time
    heartbeat.expect_connect(connection)
    assert len(heartbeat._connects) == 1  # one entry at a time
    clock.now += 1  # the first deadline: not this one's
    heartbeat.tick()
    assert connection.expired == []
    clock.now += 4
    heartbeat.tick()
    assert connection.expired == ["no namespace connected in time"]


async def test_closed_connections_are_skipped():
    clock = Clock()
    heartbeat = Heartbeat(interval=1, timeout=1, connect_timeout=1, clock=clock)
    gone = Connection(answers=False)
    heartbeat.add(gone)
    gone.closed = True
    clock.now += 10
    heartbeat.tick()
    assert gone.pings == 0 and gone.expired == []


async def test_the_task_wakes_for_a_connection_added_while_it_sleeps_long():
    heartbeat = Heartbeat(interval=0.1, timeout=0.05, connect_timeout=30)
    first = Connection()
    heartbeat.add(first)
    await asyncio.sleep(0.05)
    first.closed = True
    # Only the first connection's CONNECT deadline is left: the task sleeps
    # until it, 30 s away.
    await asyncio.sleep(0.3)
    second = Connection()
    heartbeat.add(second)
    for _ in range(100):
        if second.pings:
            break
        await asyncio.sleep(0.01)
    assert second.pings >= 1


async def test_connections_that_went_away_are_not_kept_alive():
    heartbeat = Heartbeat(interval=10, timeout=10, connect_timeout=10)
    gone = Connection()
    heartbeat.add(gone)
    ref = weakref.ref(gone)
    del gone
    gc.collect()
    assert ref() is None


async def test_pings_leave_no_object_for_the_garbage_collector_to_track():
    # Deadlines that live an interval would survive into the oldest
    # generation and trigger full collections, whose pause grows with every
    # connection the process holds.
    clock = Clock()
    heartbeat = Heartbeat(interval=25, timeout=20, connect_timeout=45, clock=clock)
    connections = [Connection() for _ in range(1000)]
    for connection in connections:
        heartbeat.add(connection)
    clock.now += 25
    heartbeat.tick()
    gc.collect()
    gc.freeze()  # what exists now is out of the count: only what the pings make is in it
    try:
        for _ in range(3):
            clock.now += 25
            heartbeat.tick()
        gc.collect()
        made = len(gc.get_objects())
    finally:
        gc.unfreeze()
    assert all(connection.pings == 4 for connection in connections)
    assert made < 100  # 1,000 connections pinged 3 times


async def test_pings_due_together_go_out_in_batches_between_other_work():
    # Connections opened together come due together: the task sends a batch,
    # lets the event loop run, and sends the next.
    heartbeat = Heartbeat(interval=0.05, timeout=10, connect_timeout=10)
    connections = [Connection() for _ in range(3 * PINGS_PER_TURN)]
    turns: list[int] = []

    async def watch() -> None:
        while not turns or turns[-1] < len(connections):
            turns.append(sum(connection.pings >= 1 for connection in connections))
            await asyncio.sleep(0)

    for connection in connections:
        heartbeat.add(connection)
    await asyncio.wait_for(watch(), 5)
    # The pings went out over several turns of the loop, at most a batch at a time.
    counts = sorted(set(turns))
    assert counts[-1] == len(connections)
    assert all(later - earlier <= PINGS_PER_TURN for earlier, later in zip(counts, counts[1:]))
    assert len(counts) >= 4
