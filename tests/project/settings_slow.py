"""
At most 1 MiB sent and not yet confirmed read per connection: a client that
stops reading is closed after about 1 MiB instead of at the 4 MiB default.
"""

from .settings import *  # noqa: F403
from .settings_idle import LOGGING  # noqa: F401

RAIN_WS = {
    "PING_INTERVAL": 30,
    "PING_TIMEOUT": 30,
    "CONNECT_TIMEOUT": 5,
    "MAX_UNREAD_BYTES": 1024 * 1024,
}
