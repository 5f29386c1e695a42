"""
The test project with sessions in the cache only.

The cache is a directory of files, so the server process and the tests share
it; ``RAIN_WS_TEST_CACHE`` names the directory.
"""

import os
import tempfile

from .settings import *  # noqa: F403

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": os.environ.get("RAIN_WS_TEST_CACHE", os.path.join(tempfile.gettempdir(), "rain_ws-test-cache")),
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
