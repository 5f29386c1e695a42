"""Settings of the project the test suite serves with real servers."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "rain_ws",
    "tests.project.suite",
    "tests.project.echo",
    "tests.project.memo",
    "tests.project.pusher",
    "tests.project.accounts",
    "tests.project.rooms_app",
    "tests.project.browser",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "rain_ws.middleware.SessionEndMiddleware",
]
ROOT_URLCONF = "tests.project.urls"
STATIC_URL = "/static/"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
ASGI_APPLICATION = "tests.project.asgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("RAIN_WS_TEST_DB", str(BASE_DIR / "test.sqlite3")),
        # Writers take the lock when their transaction begins, so concurrent
        # session saves queue up instead of failing with "database is locked".
        "OPTIONS": {"transaction_mode": "IMMEDIATE"},
    }
}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"rain_ws": {"handlers": ["console"], "level": "INFO"}},
}
RAIN_WS = {"PING_INTERVAL": 5, "PING_TIMEOUT": 5, "CONNECT_TIMEOUT": 5}
