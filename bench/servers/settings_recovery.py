"""
Settings for bench/recovery.py: the benchmark's settings with the
``bench.servers.recovery`` component (the echo component and ``reflect``) in
place of the echo component, and from the environment:

- ``BENCH_RECOVERY_WINDOW``: ``RAIN_WS["RECOVERY_WINDOW"]``; left out when
  unset, so that a rain_ws from before recovery existed starts too;
- ``BENCH_DRAIN_BATCH``, ``BENCH_DRAIN_INTERVAL``: ``DRAIN_BATCH`` and
  ``DRAIN_INTERVAL``, left at their defaults when unset;
- ``BENCH_REDIS_URL``: the Redis of a ``RedisPubSubChannelLayer`` shared by
  several processes; the in-memory layer when unset;
- ``BENCH_LOG_RECOVERY``: when set, the ``rain_ws`` logger at INFO, which
  logs why a reconnecting client got a fresh socket instead of its own
  (and listener refusals, which the benchmark has none of).
"""

import os

from .settings import *  # noqa: F403

INSTALLED_APPS = [
    *(app for app in INSTALLED_APPS if app != "bench.servers.echo"),  # noqa: F405
    "bench.servers.recovery",
]

if "BENCH_REDIS_URL" in os.environ:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # Longer than the layer's 5 s blocking reads (see settings_redis.py).
            "CONFIG": {"hosts": [{"address": os.environ["BENCH_REDIS_URL"], "socket_timeout": 10}]},
        }
    }

RAIN_WS = {"REQUIRE_SESSION": False}
if "BENCH_RECOVERY_WINDOW" in os.environ:
    RAIN_WS["RECOVERY_WINDOW"] = float(os.environ["BENCH_RECOVERY_WINDOW"])
if "BENCH_DRAIN_BATCH" in os.environ:
    RAIN_WS["DRAIN_BATCH"] = int(os.environ["BENCH_DRAIN_BATCH"])
if "BENCH_DRAIN_INTERVAL" in os.environ:
    RAIN_WS["DRAIN_INTERVAL"] = float(os.environ["BENCH_DRAIN_INTERVAL"])

if "BENCH_LOG_RECOVERY" in os.environ:
    LOGGING = {**LOGGING, "loggers": {"rain_ws": {"level": "INFO"}}}  # noqa: F405
