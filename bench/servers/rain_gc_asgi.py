"""
rain_ws as bench/servers/rain_asgi.py serves it, with Python's garbage
collections timed for bench/cluster.py.

A ``gc.callbacks`` entry times every collection, by generation: how many,
their total and longest wall time (``perf_counter``) and CPU time of the
thread (``thread_time``: a collection runs in the thread that allocated,
here the event loop's); the last 200 full collections, each with its start
(wall clock), wall and CPU time. At most once a second, and after every
full collection, and on SIGUSR1, the figures are written as JSON to
``<RAIN_GC_DIR>/<pid>.json``. It adds two calls per collection (a collection
of the youngest generation runs every 700 allocations of tracked objects),
nothing per event. (It does not count the tracked objects: listing millions
of them would itself stop the process for a good part of a second.)
"""

import gc
import json
import os
import signal
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.servers.settings")

from bench.servers.rain_asgi import application  # noqa: E402, F401

_PATH = os.path.join(os.environ["RAIN_GC_DIR"], f"{os.getpid()}.json") if os.environ.get("RAIN_GC_DIR") else None
_stats = {
    str(generation): {"count": 0, "wall_s": 0.0, "cpu_s": 0.0, "max_wall_s": 0.0, "max_cpu_s": 0.0}
    for generation in range(3)
}
#: The last full collections: [wall-clock time at the start, wall s, CPU s].
_stats["full_pauses"] = []
_started = [0.0, 0.0]
_written = [0.0]


def _write(temporary_suffix: str = ".tmp") -> None:
    if _PATH is None:
        return
    temporary = _PATH + temporary_suffix
    with open(temporary, "w") as out:
        json.dump(_stats, out)
    os.replace(temporary, _PATH)


def _timed(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0], _started[1] = time.perf_counter(), time.thread_time()
        return
    wall, cpu = time.perf_counter() - _started[0], time.thread_time() - _started[1]
    figures = _stats[str(info["generation"])]
    figures["count"] += 1
    figures["wall_s"] += wall
    figures["cpu_s"] += cpu
    figures["max_wall_s"] = max(figures["max_wall_s"], wall)
    figures["max_cpu_s"] = max(figures["max_cpu_s"], cpu)
    now = time.monotonic()
    if info["generation"] == 2:
        pauses = _stats["full_pauses"]
        pauses.append([time.time() - wall, wall, cpu])
        del pauses[:-200]
    if info["generation"] == 2 or now - _written[0] >= 1.0:
        _written[0] = now
        _write()


gc.callbacks.append(_timed)
if _PATH is not None:
    # SIGUSR1: write the figures now (bench/cluster.py reads them between stages).
    signal.signal(signal.SIGUSR1, lambda number, frame: _write(".signal.tmp"))
