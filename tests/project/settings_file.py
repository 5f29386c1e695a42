"""
The test project with sessions in files; ``RAIN_WS_TEST_SESSION_FILES`` names
their directory.
"""

import os
import tempfile

from .settings import *  # noqa: F403

SESSION_ENGINE = "django.contrib.sessions.backends.file"
SESSION_FILE_PATH = os.environ.get(
    "RAIN_WS_TEST_SESSION_FILES", os.path.join(tempfile.gettempdir(), "rain_ws-test-sessions")
)
