"""
The benchmark's rain_ws settings on a Redis channel layer, so that rooms span
server processes: the layer class (``RedisChannelLayer`` or
``RedisPubSubChannelLayer``) and the Redis URL come from the environment.
"""

import os

from .settings import *  # noqa: F403

_LAYERS = {
    "RedisChannelLayer": "channels_redis.core.RedisChannelLayer",
    "RedisPubSubChannelLayer": "channels_redis.pubsub.RedisPubSubChannelLayer",
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": _LAYERS[os.environ["BENCH_LAYER"]],
        # The layer's blocking reads wait up to 5 s, redis-py's default socket
        # timeout: a longer one keeps an idle read from timing out.
        "CONFIG": {"hosts": [{"address": os.environ["BENCH_REDIS_URL"], "socket_timeout": 10}]},
    }
}
