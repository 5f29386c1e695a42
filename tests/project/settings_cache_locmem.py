"""
The test project with sessions in a local-memory cache: one server process
only, whose sessions the tests read and write over HTTP.
"""

from .settings import *  # noqa: F403

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
