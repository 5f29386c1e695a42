"""The test project with write-through cached database sessions (the cache of settings_cache)."""

from .settings_cache import *  # noqa: F403

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
