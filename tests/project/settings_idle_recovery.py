"""The idle reaper of ``settings_idle`` with connection state recovery on (one process)."""

from .settings_idle import *  # noqa: F403

RAIN_WS = {**RAIN_WS, "RECOVERY_WINDOW": 30}  # noqa: F405
