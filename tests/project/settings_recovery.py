"""
The test project with connection state recovery on, on Redis
(RedisPubSubChannelLayer) for several server processes; the window comes
from ``RAIN_WS_RECOVERY_WINDOW`` (30 s by default), so tests can make it short.
"""

import os

from .settings_redis_pubsub import *  # noqa: F403

RAIN_WS = {  # noqa: F405
    **RAIN_WS,  # noqa: F405
    "RECOVERY_WINDOW": float(os.environ.get("RAIN_WS_RECOVERY_WINDOW", "30")),
}
