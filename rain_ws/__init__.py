"""
rain_ws: Socket.IO v5 websockets for Django components, the RAIN way.

Component apps declare handlers in a ``websockets`` module; rain_ws discovers
them at start-up and serves each as the channel
``/<component>/<version>/<channel>``.
"""

from .exceptions import AckTimeout, RainError, SocketDisconnected
from .registry import channel
from .runtime import abroadcast, broadcast
from .socket import Ack, Socket

__all__ = [
    "Ack",
    "AckTimeout",
    "RainError",
    "Socket",
    "SocketDisconnected",
    "abroadcast",
    "broadcast",
    "channel",
]
__version__ = "0.1.0"
