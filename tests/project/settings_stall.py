"""
A bound on unread bytes far above what a connection's buffers hold, and a
heartbeat of half a second: a client that stops reading meets the ping
timeout, not MAX_UNREAD_BYTES.
"""

from .settings import *  # noqa: F403
from .settings_idle import LOGGING  # noqa: F401

RAIN_WS = {
    "PING_INTERVAL": 0.5,
    "PING_TIMEOUT": 0.5,
    "CONNECT_TIMEOUT": 5,
    "MAX_UNREAD_BYTES": 64 * 1024 * 1024,
}
