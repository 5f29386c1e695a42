"""
The test project on channels-redis's RedisChannelLayer, for several server
processes sharing one Redis (its address in ``RAIN_WS_REDIS_URL``).

The connection options are the ones docs/deployment.rst recommends: a
socket timeout longer than the layer's 5-second blocking reads (redis-py 8
defaults to 5 seconds, which fails every idle read), and one immediate retry
on a connection error, so that a pooled connection left over from before a
Redis restart is replaced instead of losing the message sent through it.
"""

import os

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from .settings import *  # noqa: F403

REDIS_HOST = {
    "address": os.environ.get("RAIN_WS_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "socket_timeout": 10,
    "retry": Retry(NoBackoff(), 1, (ConnectionError,)),
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_HOST]},
    }
}
