"""
The test project as the browser tests serve it: session cookies that expire
after 6 s, so the keepalive acts within a test, and pings every second, so
the runtime's pongs are exercised (with room for a busy machine to answer).
"""

from tests.project.settings import *  # noqa: F403

SESSION_COOKIE_AGE = 6
RAIN_WS = {**RAIN_WS, "PING_INTERVAL": 1, "PING_TIMEOUT": 3}  # noqa: F405
