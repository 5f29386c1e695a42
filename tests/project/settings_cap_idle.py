"""
A hard cap of three connections with the idle reaper on, but checking only
once a minute: within a test, idle connections are reaped only when a
connection arrives at the cap.
"""

from .settings import *  # noqa: F403
from .settings_idle import LOGGING  # noqa: F401

RAIN_WS = {
    "PING_INTERVAL": 30,
    "PING_TIMEOUT": 30,
    "CONNECT_TIMEOUT": 5,
    "MAX_CONNECTIONS": 3,
    "DISCONNECT_IDLE": True,
    "IDLE_TIME": 0.5,
    "IDLE_CHECK_INTERVAL": 60,
    "DISCONNECT_IDLE_ON_MAX_CONN": 3,
}
