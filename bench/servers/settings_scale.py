"""
Settings for bench/scale.py: the benchmark's settings with the idle reaper on.

``DISCONNECT_IDLE_ON_MAX_CONN`` is far above any count the scale run holds,
so the reaper's check runs every ``IDLE_CHECK_INTERVAL`` but never reaps;
``PING_INTERVAL`` is short so that the heartbeat's cost shows within seconds.
Both can be set from the environment (``RAIN_SCALE_PING_INTERVAL``,
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
