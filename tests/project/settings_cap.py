"""
A hard cap of two connections per process, with the idle reaper off; refusals
are logged at most once every two seconds.
"""

from .settings import *  # noqa: F403
from .settings_idle import LOGGING  # noqa: F401

RAIN_WS = {
    "PING_INTERVAL": 30,
    "PING_TIMEOUT": 30,
    "CONNECT_TIMEOUT": 5,
    "MAX_CONNECTIONS": 2,
    "IDLE_CHECK_INTERVAL": 2,
}
