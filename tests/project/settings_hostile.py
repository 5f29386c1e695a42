"""
Small bounds for the hostile-client tests (``tests/test_hostile.py``): a ping
every second, 2 s to connect a namespace (again) and, for binary packets,
frames of at most 64 KiB and 128 KiB of attachments in flight.
"""

from .settings import *  # noqa: F403
from .settings_idle import LOGGING  # noqa: F401

RAIN_WS = {
    "PING_INTERVAL": 1,
    "PING_TIMEOUT": 5,
    "CONNECT_TIMEOUT": 2,
    "MAX_PAYLOAD": 64 * 1024,
    "MAX_QUEUED_BYTES": 128 * 1024,
}
