"""
The browser tests' project with the idle reaper at its most eager: a
connection idle for 1 s is disconnected as soon as the process holds one.
"""

from tests.project.browser.settings import *  # noqa: F403

RAIN_WS = {  # noqa: F405
    **RAIN_WS,  # noqa: F405
    "DISCONNECT_IDLE": True,
    "IDLE_TIME": 1,
    "IDLE_CHECK_INTERVAL": 0.2,
    "DISCONNECT_IDLE_ON_MAX_CONN": 1,
}
