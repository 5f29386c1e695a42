"""
Log lines for refused clients, a few at a time.

A developer must see why a client was refused: a fresh project under
``runserver`` has no ``LOGGING`` for rain_ws, and Python then prints only
WARNING lines, so refusals are logged at WARNING, one line each with the
client, the namespace or path, and the reason. A production server must not
be flooded by them (a client that retries in a loop, a crawler): past
``BURST`` lines within ``INTERVAL`` seconds, lines are counted instead, and
the count is logged with the first refusal after the interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["BURST", "INTERVAL", "RefusalLog", "refusals"]

logger = logging.getLogger("rain_ws")

#: Refusal lines logged per interval before they are counted instead.
BURST = 10
#: Seconds of an interval.
INTERVAL = 10.0


class RefusalLog:
    """Log refusals, ``burst`` lines per ``interval`` seconds at most."""

    def __init__(self, burst: int = BURST, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()  # refusals come from the event loop and from views' threads
        self._window_start = float("-inf")
        self._logged = 0
        self._unlogged = 0

    def reset(self) -> None:
        """Start a new interval, forgetting what was counted (for tests)."""
        with self._lock:
            self._window_start = float("-inf")
            self._logged = 0
            self._unlogged = 0

    def refused(self, message: str, *args: Any) -> None:
        """Log ``message % args`` at WARNING, unless this interval's lines are spent."""
        with self._lock:
            now = self._clock()
            if now - self._window_start >= self.interval:
                if self._unlogged:
                    logger.warning(
                        "%d more refusal(s) not logged in the %g s before (at most %d lines per %g s)",
                        self._unlogged,
                        self.interval,
                        self.burst,
                        self.interval,
                    )
                self._window_start = now
                self._logged = 0
                self._unlogged = 0
            if self._logged >= self.burst:
                self._unlogged += 1
                return
            self._logged += 1
        logger.warning(message, *args)


#: The refusal log of this process.
refusals = RefusalLog()
