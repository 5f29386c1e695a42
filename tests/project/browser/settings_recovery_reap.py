"""
The browser tests' project with connection state recovery and an eager idle
reaper: a connection idle for 2 s is disconnected. A reaped socket comes
back, on its next emit, with its rooms and what it missed, unless it missed
more than 5 events (its log's bound): then it comes back as a new socket.
The window comes from ``RAIN_WS_RECOVERY_WINDOW`` (30 s by default; 0 turns
recovery off, for the same project without it).
"""

import os

from tests.project.browser.settings_reap import *  # noqa: F403

RAIN_WS = {  # noqa: F405
    **RAIN_WS,  # noqa: F405
    "IDLE_TIME": 2,
    "RECOVERY_WINDOW": float(os.environ.get("RAIN_WS_RECOVERY_WINDOW", "30")),
    "RECOVERY_MAX_EVENTS": 5,
}
