"""
The browser tests' project with connection state recovery on: a socket that
goes away comes back within 30 s with its rooms and what it missed.
"""

from tests.project.browser.settings import *  # noqa: F403

RAIN_WS = {**RAIN_WS, "RECOVERY_WINDOW": 30}  # noqa: F405
