"""
The graceful drain of a server process: no new connections, and the open
ones closed in jittered batches, so that clients reconnect to the other
processes a few at a time rather than all at once.

A drain is requested from outside the process (``manage.py rain_ws_drain``)
through the channel layer, before the process is stopped: on SIGTERM uvicorn
closes every WebSocket at once (1012) and daphne drops the connections
without a close frame, so a drain has to come first (a ``preStop`` hook).
Each connection is closed with "service restart" (1012, or 4012 on daphne),
never with a Socket.IO DISCONNECT, after which official clients would not
reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from typing import Any, Protocol

from .idle import ConnectionTracker
from .layer import LayerBridge

__all__ = ["DRAIN", "Drainable", "Drainer", "drain_message"]

logger = logging.getLogger("rain_ws")

#: The layer message that asks processes to drain.
DRAIN = "rain_ws.drain"


def drain_message(pid: int | None) -> dict[str, Any]:
    """The layer message that drains the process ``pid`` (every process for ``None``)."""
    return {"type": DRAIN, "pid": pid}


class Drainable(Protocol):
    """What the drainer needs from a connection."""

    def drain(self) -> None:
        """Close with "service restart", so that the client reconnects elsewhere."""


class Drainer:
    """Drains this process's connections when asked, once."""

    def __init__(self, bridge: LayerBridge, tracker: ConnectionTracker, batch: int, interval: float) -> None:
        self.bridge = bridge
        self.tracker = tracker
        self.batch = batch
        self.interval = interval
        self.draining = False
        self._listening = False
        self._task: asyncio.Task[None] | None = None

    def listen(self) -> None:
        """Read the channel layer, where drain requests come, from the first connection on."""
        if self._listening or not self.bridge.enabled:
            return
        self._listening = True
        self.bridge.on(DRAIN, self._on_drain)
        self.bridge.loop.create_task(self.bridge.ready())

    def _on_drain(self, message: dict[str, Any]) -> None:
        if message.get("pid") in (None, os.getpid()):
            self.drain()

    def drain(self) -> None:
        """Refuse new connections from now on, and close the open ones in batches."""
        if self.draining:
            return
        self.draining = True
        logger.warning(
            "draining: no new connections; closing %d in batches of %d every %ss or so",
            len(self.tracker),
            self.batch,
            self.interval,
        )
        self._task = self.bridge.loop.create_task(self._close_all())

    async def _close_all(self) -> None:
        closed = 0
        while True:
            connections: list[Any] = list(self.tracker.connections)[: self.batch]
            if not connections:
                break
            for connection in connections:
                self.tracker.remove(connection)
                drainable: Drainable = connection
                drainable.drain()
                closed += 1
            # Jittered: processes drained at once do not close in step.
            await asyncio.sleep(self.interval * random.uniform(0.5, 1.5))
        logger.warning("drained: %d connection(s) closed", closed)
