"""The test project on Redis (RedisPubSubChannelLayer), draining in batches of 10 every 0.3 s."""

from .settings_redis_pubsub import *  # noqa: F403

RAIN_WS = {**RAIN_WS, "DRAIN_BATCH": 10, "DRAIN_INTERVAL": 0.3}  # noqa: F405
