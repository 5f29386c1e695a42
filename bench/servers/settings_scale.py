"""
Settings for bench/scale.py: the benchmark's settings with the idle reaper on.

``DISCONNECT_IDLE_ON_MAX_CONN`` is far above any count the scale run holds,
so the reaper's check runs every ``IDLE_CHECK_INTERVAL`` but never reaps.
``PING_INTERVAL`` and ``IDLE_CHECK_INTERVAL`` come from the environment
(``RAIN_SCALE_PING_INTERVAL``, which bench/scale.py sets for each run, and
``RAIN_SCALE_IDLE_CHECK_INTERVAL``).
"""

import os

from bench.servers.settings import *  # noqa: F403

RAIN_WS = {
    "REQUIRE_SESSION": False,
    "DISCONNECT_IDLE": True,
    "DISCONNECT_IDLE_ON_MAX_CONN": 1_000_000,
    "PING_INTERVAL": float(os.environ.get("RAIN_SCALE_PING_INTERVAL", "5")),
    "IDLE_CHECK_INTERVAL": float(os.environ.get("RAIN_SCALE_IDLE_CHECK_INTERVAL", "1")),
}
