"""
rain_ws as bench/servers/rain_asgi.py serves it, with the idle reaper's
sweep timed for bench/scale.py.

``ConnectionTracker.sweep`` is wrapped (in this process only) to time each
call with ``perf_counter``; after each sweep the count, total, last and
largest time and the connections held are written, as JSON, to the file
named by ``RAIN_SCALE_SWEEP_FILE``. The wrapper adds one clock read and a
small file write per sweep (one a second), nothing per event.
"""

import json
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.servers.settings_scale")

from bench.servers.rain_asgi import application  # noqa: E402, F401
from rain_ws.idle import ConnectionTracker  # noqa: E402

_SWEEP_FILE = os.environ.get("RAIN_SCALE_SWEEP_FILE")
_sweep = ConnectionTracker.sweep
_stats = {"sweeps": 0, "total_s": 0.0, "max_s": 0.0, "last_s": 0.0, "held": 0}


def _timed_sweep(self: ConnectionTracker, force: bool = False) -> int:
    started = time.perf_counter()
    reaped = _sweep(self, force)
    spent = time.perf_counter() - started
    if not force:
        _stats["sweeps"] += 1
        _stats["total_s"] += spent
        _stats["max_s"] = max(_stats["max_s"], spent)
        _stats["last_s"] = spent
        _stats["held"] = len(self.connections)
        _stats["reaped"] = _stats.get("reaped", 0) + reaped
        if _SWEEP_FILE:
            with open(_SWEEP_FILE, "w") as out:
                json.dump(_stats, out)
    return reaped


ConnectionTracker.sweep = _timed_sweep
