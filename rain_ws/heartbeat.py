"""
Engine.IO heartbeats and the CONNECT deadline, for every connection of a
process, from one task.

Every connection is pinged ``PING_INTERVAL`` after the previous ping, must
answer within ``PING_TIMEOUT``, and must connect a namespace within
``CONNECT_TIMEOUT`` of opening (and again when it has left every namespace). Since each delay is the same for every
connection, deadlines come due in the order they were made: three FIFO queues
hold them, and one task per event loop sleeps until the earliest. That costs
no timer and no task per connection. The queues hold connections weakly, so
a connection that goes away is freed at once and skipped when its entry
comes due.

A queue keeps its deadlines, weak references and numbers in parallel deques
rather than as one tuple per entry: a tuple holding a weak reference is
tracked by the garbage collector, and one made at every ping and kept for an
interval survives into the oldest generation, whose growth is what triggers
full collections. A process holding many connections then pays a full
collection (a pause in proportion to everything it holds) every few
intervals; floats and ints in a deque add nothing for the collector to track.

A heartbeat made with a ``clock`` of its own runs no task: whoever made it
calls :meth:`Heartbeat.tick` (the unit tests, with a clock they move).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["Beating", "Heartbeat"]


class Beating(Protocol):
    """What the heartbeat needs from a connection."""

    closed: bool
    pongs: int
    namespaces_joined: bool
    awaiting_connect: bool
    empty_since: float

    def heartbeat_ping(self) -> int: ...

    def expire(self, reason: str) -> None: ...


Ref = weakref.ReferenceType

#: Most pings the task sends in one turn of the event loop. Connections that
#: opened together come due together (a burst of reconnects, a deploy), and
#: thousands of pings sent at once would hold up every other connection's
#: events for as long; between two batches the loop handles what arrived.
PINGS_PER_TURN = 64


class Deadlines:
    """Deadlines in the order they come due, each for a connection (held weakly) and a number."""

    __slots__ = ("_at", "_numbers", "_refs")

    def __init__(self) -> None:
        self._at: deque[float] = deque()
        self._refs: deque[Ref[Beating]] = deque()
        self._numbers: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._at)

    def push(self, deadline: float, ref: Ref[Beating], number: int = 0) -> None:
        self._at.append(deadline)
        self._refs.append(ref)
        self._numbers.append(number)

    def next_at(self) -> float | None:
        """When the earliest deadline comes due (None: there is none)."""
        return self._at[0] if self._at else None

    def due(self, now: float) -> bool:
        return bool(self._at) and self._at[0] <= now

    def pop(self) -> tuple[Ref[Beating], int]:
        """Take the earliest entry: its connection's reference and its number."""
        self._at.popleft()
        return self._refs.popleft(), self._numbers.popleft()


class Heartbeat:
    def __init__(
        self, interval: float, timeout: float, connect_timeout: float, clock: Callable[[], float] | None = None
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._manual = clock is not None
        self._loop = asyncio.get_running_loop()
        self._clock = clock or self._loop.time
        # When to ping; when a pong is due, with the ping's number; when a
        # namespace must be connected.
        self._pings = Deadlines()
        self._pongs = Deadlines()
        self._connects = Deadlines()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._sleeping_until = float("inf")

    def add(self, connection: Beating) -> None:
        """Start the heartbeat and the CONNECT deadline of a new connection."""
        now = self._clock()
        ref = weakref.ref(connection)
        self._pings.push(now + self.interval, ref)
        connection.empty_since = now
        connection.awaiting_connect = True
        self._connects.push(now + self.connect_timeout, ref)
        self._due_by(now + min(self.interval, self.connect_timeout))

    def expect_connect(self, connection: Beating) -> None:
        """
        Give a connection that has left its last namespace ``CONNECT_TIMEOUT``
        to connect one again. One deadline entry at a time: while an earlier
        one is pending, it is moved on when it comes due, so a client that
        connects and disconnects in a loop adds no entries.
        """
        now = self._clock()
        connection.empty_since = now
        if connection.awaiting_connect:
            return
        connection.awaiting_connect = True
        deadline = now + self.connect_timeout
        self._connects.push(deadline, weakref.ref(connection))
        self._due_by(deadline)

    def _due_by(self, deadline: float) -> None:
        """Have the task running and awake by ``deadline``."""
        if self._manual:
            return
        if self._task is None:
            self._task = self._loop.create_task(self._run())
        elif deadline < self._sleeping_until and self._wake is not None and not self._wake.done():
            # The task sleeps until a later deadline (the queues were empty
            # but for it): wake it to take this one into account.
            self._wake.set_result(None)

    async def _run(self) -> None:
        loop = self._loop
        try:
            while True:
                next_deadline = self.tick(PINGS_PER_TURN)
                if next_deadline is None:
                    break
                if next_deadline <= loop.time():
                    await asyncio.sleep(0)  # more pings are due: after the loop's other work
                    continue
                self._sleeping_until = next_deadline
                self._wake = wake = loop.create_future()
                timer = loop.call_at(self._sleeping_until, _wake_up, wake)
                try:
                    await wake
                finally:
                    timer.cancel()
                    self._wake = None
                    self._sleeping_until = float("inf")
        finally:
            self._task = None

    def tick(self, most_pings: int | None = None) -> float | None:
        """
        Act on every deadline that is due, sending at most ``most_pings``
        pings; return the next deadline (``None``: nothing left; now: pings
        left to send).
        """
        now = self._clock()
        self._due_connects(now)
        self._due_pongs(now)
        if not self._due_pings(now, most_pings):
            return now
        heads = [queue.next_at() for queue in (self._pings, self._pongs, self._connects)]
        return min((at for at in heads if at is not None), default=None)

    def _due_pings(self, now: float, most: int | None) -> bool:
        """Send the pings due, up to ``most``; False if some are left."""
        pings, pongs = self._pings, self._pongs
        sent = 0
        while pings.due(now):
            if sent == most:
                return False
            ref, _ = pings.pop()
            connection = ref()
            if connection is None or connection.closed:
                continue
            number = connection.heartbeat_ping()
            pongs.push(now + self.timeout, ref, number)
            pings.push(now + self.interval, ref)
            sent += 1
        return True

    def _due_pongs(self, now: float) -> None:
        pongs = self._pongs
        while pongs.due(now):
            ref, number = pongs.pop()
            connection = ref()
            if connection is not None and not connection.closed and connection.pongs < number:
                connection.expire("ping timeout")

    def _due_connects(self, now: float) -> None:
        connects = self._connects
        while connects.due(now):
            ref, _ = connects.pop()
            connection = ref()
            if connection is None:
                continue
            if connection.closed or connection.namespaces_joined:
                connection.awaiting_connect = False
                continue
            deadline = connection.empty_since + self.connect_timeout
            if deadline > now:
                # It left its last namespace after this entry was made: its
                # own deadline is later (and, among entries made since, out
                # of order by less than CONNECT_TIMEOUT).
                connects.push(deadline, ref)
                continue
            connection.awaiting_connect = False
            connection.expire("no namespace connected in time")


def _wake_up(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
