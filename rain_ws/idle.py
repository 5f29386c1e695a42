"""
The connections of a process, the connection limits, and the idle reaper.

RAIN's idle watcher, kept: with ``DISCONNECT_IDLE`` on, a check every
``IDLE_CHECK_INTERVAL`` that finds the process holding at least
``DISCONNECT_IDLE_ON_MAX_CONN`` connections disconnects **every** connection
idle for ``IDLE_TIME`` (no event or ack in either direction; heartbeats do
not count). The clients see a server-side DISCONNECT on each namespace, so
official clients do not reconnect by themselves, and the browser runtime
reconnects on its next emit.

Activity is recorded by moving the connection to the end of an ordered dict,
O(1) and without a timer, so the least recently active connections are at the
front and a sweep looks only at those it reaps (and at busy ones it skips).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from .conf import RainSettings
from .metrics import metrics

__all__ = ["ConnectionTracker", "Tracked"]

logger = logging.getLogger("rain_ws")


class Tracked(Protocol):
    """What the tracker needs from a connection."""

    last_active: float

    @property
    def busy(self) -> bool: ...

    def reap(self) -> None: ...


class ConnectionTracker:
    """
    Every connection of one event loop (one server process).

    ``clock`` replaces the event loop's clock (the unit tests move their
    own); the tracker then runs no reaper task, and its owner calls
    :meth:`sweep`.
    """

    def __init__(self, settings: RainSettings, clock: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self.reaping = settings.DISCONNECT_IDLE
        self._loop = asyncio.get_running_loop()
        self._manual = clock is not None
        self._clock = clock or self._loop.time
        # Least recently active first, when reaping; insertion order otherwise.
        self.connections: OrderedDict[Tracked, None] = OrderedDict()
        self._reaper: asyncio.Task[None] | None = None
        self._refusals_unlogged = 0
        self._refusal_logged_at = float("-inf")
        self._refusal_log_pending: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self.connections)

    def admit(self, connection: Tracked) -> bool:
        """
        Count a new connection in, unless ``MAX_CONNECTIONS`` is reached even
        after reaping idle ones (when the reaper is on).
        """
        limit = self.settings.MAX_CONNECTIONS
        if limit is not None and len(self.connections) >= limit:
            if self.reaping:
                self.sweep(force=True)
            if len(self.connections) >= limit:
                self._refused()
                return False
        connection.last_active = self._clock()
        self.connections[connection] = None
        if self.reaping and self._reaper is None and not self._manual:
            self._reaper = self._loop.create_task(self._run())
        return True

    def remove(self, connection: Tracked) -> None:
        self.connections.pop(connection, None)

    def touch(self, connection: Tracked) -> None:
        """Record activity: an event or ack in or out."""
        connection.last_active = self._clock()
        if connection in self.connections:
            self.connections.move_to_end(connection)

    def idle_count(self) -> int:
        """How many connections have been idle for ``IDLE_TIME`` (reaper on only)."""
        if not self.reaping:
            return 0
        cutoff = self._clock() - self.settings.IDLE_TIME
        count = 0
        for connection in self.connections:
            if connection.last_active > cutoff:
                break
            count += 1
        return count

    def sweep(self, force: bool = False) -> int:
        """
        Disconnect every idle connection if the process holds at least
        ``DISCONNECT_IDLE_ON_MAX_CONN`` (or when ``force``); return how many.
        """
        connections = self.connections
        if not force and len(connections) < self.settings.DISCONNECT_IDLE_ON_MAX_CONN:
            return 0
        cutoff = self._clock() - self.settings.IDLE_TIME
        reaped = 0
        for _ in range(len(connections)):
            connection = next(iter(connections))
            if connection.last_active > cutoff:
                break
            if connection.busy:
                # A listener still running or an ack still pending: not idle.
                self.touch(connection)
                continue
            del connections[connection]
            connection.reap()
            reaped += 1
        if reaped:
            metrics.reaped += reaped
            logger.info(
                "idle reaper disconnected %d connection(s) idle for %ss; %d remain",
                reaped,
                self.settings.IDLE_TIME,
                len(connections),
            )
        return reaped

    async def _run(self) -> None:
        try:
            while self.connections:
                await asyncio.sleep(self.settings.IDLE_CHECK_INTERVAL)
                self.sweep()
        finally:
            self._reaper = None

    def _refused(self) -> None:
        """Count a refusal; log refusals once per IDLE_CHECK_INTERVAL, not once each."""
        metrics.refused += 1
        self._refusals_unlogged += 1
        wait = self._refusal_logged_at + self.settings.IDLE_CHECK_INTERVAL - self._clock()
        if wait <= 0:
            self._log_refusals()
        elif self._refusal_log_pending is None:
            # The refusals of this interval are logged at its end.
            self._refusal_log_pending = self._loop.call_later(wait, self._log_refusals)

    def _log_refusals(self) -> None:
        self._refusal_log_pending = None
        if self._refusals_unlogged:
            logger.warning(
                "refused %d connection(s) at MAX_CONNECTIONS (%d)",
                self._refusals_unlogged,
                self.settings.MAX_CONNECTIONS,
            )
            self._refusal_logged_at = self._clock()
            self._refusals_unlogged = 0
