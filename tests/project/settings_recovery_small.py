"""
The recovery test project with a replay log of 5 events per socket, so a
socket that misses more cannot be recovered.
"""

from .settings_recovery import *  # noqa: F403

RAIN_WS = {**RAIN_WS, "RECOVERY_MAX_EVENTS": 5}  # noqa: F405
