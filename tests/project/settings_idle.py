"""
The idle reaper at a small scale: from 3 connections on, every connection
idle for half a second is disconnected, checked five times a second. Pings are
far apart, so that heartbeats neither end a connection nor fall in a test.
"""

from .settings import *  # noqa: F403

# One line per record, with its level, so that tests can count WARNING lines:
# rain_ws's records do not also go to the root logger that daphne sets up.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"level": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "level"}},
    "loggers": {"rain_ws": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}

RAIN_WS = {
    "PING_INTERVAL": 30,
    "PING_TIMEOUT": 30,
    "CONNECT_TIMEOUT": 5,
    "DISCONNECT_IDLE": True,
    "IDLE_TIME": 0.5,
    "IDLE_CHECK_INTERVAL": 0.2,
    "DISCONNECT_IDLE_ON_MAX_CONN": 3,
}
