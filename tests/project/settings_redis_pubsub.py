"""
The test project on channels-redis's RedisPubSubChannelLayer, for several
server processes sharing one Redis (its address in ``RAIN_WS_REDIS_URL``),
with the same connection options as ``settings_redis``.
"""

from .settings_redis import *  # noqa: F403
from .settings_redis import REDIS_HOST

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_HOST]},
    }
}
