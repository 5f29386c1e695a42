"""
The test project on channels-redis's RedisChannelLayer, for several server
processes sharing one Redis (its address in ``RAIN_WS_REDIS_URL``).
"""

import os

from .settings import *  # noqa: F403

REDIS_URL = os.environ.get("RAIN_WS_REDIS_URL", "redis://127.0.0.1:6379/0")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 10}]},
    }
}
