"""
Settings for bench/cluster.py: rain_ws server processes sharing one
redis-server through ``RedisPubSubChannelLayer`` (its URL from
``BENCH_REDIS_URL``), serving the cluster component (``join``, ``fanout`` to
a room, ``broadcast`` to the whole channel) on the main namespace in place of
the echo component.

The heartbeat is rain_ws's default (25 s, 20 s) unless
``RAIN_CLUSTER_PING_INTERVAL`` and ``RAIN_CLUSTER_PING_TIMEOUT`` say
otherwise (the smoke run shortens it to see pings within seconds).
"""

import os

from .settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "bench.servers.echo"] + ["bench.servers.cluster"]  # noqa: F405

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # The layer's blocking reads wait up to 5 s, redis-py's default socket
        # timeout: a longer one keeps an idle read from timing out.
        "CONFIG": {"hosts": [{"address": os.environ["BENCH_REDIS_URL"], "socket_timeout": 10}]},
    }
}

RAIN_WS = {
    "REQUIRE_SESSION": False,
    "PING_INTERVAL": float(os.environ.get("RAIN_CLUSTER_PING_INTERVAL", "25")),
    "PING_TIMEOUT": float(os.environ.get("RAIN_CLUSTER_PING_TIMEOUT", "20")),
}
