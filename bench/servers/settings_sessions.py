"""The benchmark's rain_ws settings with sessions: a database file and a session engine from the environment."""

import os

from .settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.servers.notes"]  # noqa: F405
ROOT_URLCONF = "bench.servers.urls_sessions"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["BENCH_DB"],
        "OPTIONS": {"transaction_mode": "IMMEDIATE"},
        "CONN_MAX_AGE": float(os.environ.get("BENCH_CONN_MAX_AGE", "0")),
    }
}
SESSION_ENGINE = os.environ.get("BENCH_SESSION_ENGINE", "django.contrib.sessions.backends.db")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
