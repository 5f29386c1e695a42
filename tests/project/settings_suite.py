"""The settings the official Socket.IO protocol test suite expects."""

from .settings import *  # noqa: F403

RAIN_WS = {
    "PING_INTERVAL": 0.3,
    "PING_TIMEOUT": 0.2,
    "CONNECT_TIMEOUT": 1,
    "MAX_PAYLOAD": 1_000_000,
    "REQUIRE_SESSION": False,
}
