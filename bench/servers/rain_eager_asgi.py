"""
rain_ws as bench/servers/rain_asgi.py serves it, with the start of socket
workers chosen by ``BENCH_EAGER_START`` for bench/eager.py: ``1`` eager (the
worker's first step runs inside its creation; Python 3.12 and later), ``0``
or unset, scheduled on the event loop as rain_ws does.

The eager start measured here is what rain_ws would do if it adopted it: a
worker created with ``eager_start=True`` answers an event whose listener
needs no wait inside ``receive_event``, and first steps get ``TURN`` seconds
between turns of the loop (past that, workers are scheduled until the loop
turns), so that a burst from one client stays paced. It cost more than it
saved (bench/RESULTS.md, "Python 3.12+ and eager tasks"), so rain_ws keeps
scheduling its workers.
"""

import asyncio
import os
import sys
from time import perf_counter
from typing import Any

from bench.servers.rain_asgi import application  # noqa: F401
from rain_ws import dispatch

_wanted = os.environ.get("BENCH_EAGER_START", "0")
if _wanted == "1":
    if sys.version_info < (3, 12):
        raise SystemExit("BENCH_EAGER_START=1 needs Python 3.12 or later")

    # The time eager first steps may still take on _inline_loop; once spent,
    # workers are scheduled until _renew, called soon by the loop, gives
    # another TURN.
    _inline_loop: asyncio.AbstractEventLoop | None = None
    _inline_left = 0.0
    _renewing: asyncio.AbstractEventLoop | None = None

    def _renew(loop: asyncio.AbstractEventLoop) -> None:
        global _inline_loop, _inline_left, _renewing
        _inline_loop, _inline_left, _renewing = loop, dispatch.TURN, None

    def _eager_start(socket: Any, connecting: bool) -> None:
        global _inline_left, _renewing
        loop = asyncio.get_running_loop()
        socket._worker = dispatch._STARTING
        if _inline_loop is loop and _inline_left > 0:
            started = perf_counter()
            task = asyncio.Task(dispatch._work(socket, connecting), loop=loop, eager_start=True)
            _inline_left -= perf_counter() - started
        else:
            if _renewing is not loop:
                _renewing = loop
                loop.call_soon(_renew, loop)
            task = loop.create_task(dispatch._work(socket, connecting))
        if socket._worker is dispatch._STARTING:
            socket._worker = None if task.done() else task

    dispatch._start = _eager_start
