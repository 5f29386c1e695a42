"""
The test project on Redis (RedisPubSubChannelLayer) with connection state
recovery on (a 30 s window) and a drain that closes 25 connections about
every 0.5 s: 200 sockets go out in 8 batches over about 3.5 s.
"""

from .settings_redis_pubsub import *  # noqa: F403

RAIN_WS = {  # noqa: F405
    **RAIN_WS,  # noqa: F405
    "RECOVERY_WINDOW": 30,
    "DRAIN_BATCH": 25,
    "DRAIN_INTERVAL": 0.5,
}
