"""
The test project on channels-redis's RedisPubSubChannelLayer, for several
server processes sharing one Redis (its address in ``RAIN_WS_REDIS_URL``).
"""

from .settings_redis import *  # noqa: F403
from .settings_redis import REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}
