"""
Every limit small, to see each counter of the metrics view move: the idle
reaper of ``settings_idle`` (from 3 connections on, idle after 0.5 s, checked
every 0.2 s), a cap of 3 connections, and 1 MiB of unread bytes.
"""

from .settings_idle import *  # noqa: F403
from .settings_idle import RAIN_WS as IDLE

RAIN_WS = {**IDLE, "MAX_CONNECTIONS": 3, "MAX_UNREAD_BYTES": 1024 * 1024}
