"""
Settings of the example project: one process, everything embedded, by default.

SQLite holds the sessions and users, and the in-memory channel layer serves
rooms and server pushes within this one process. With ``RAIN_WS_REDIS_URL``
set, the channel layer is channels-redis instead, and several processes of
the site share rooms and broadcasts; nothing else changes.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# For local use only: never deploy with this key or with DEBUG on.
SECRET_KEY = "example-project-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    # First, so that `manage.py runserver` serves ASGI, websockets included.
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "rain_ws",
    # The site's layout, stylesheet, toasts, sign-up and connection page.
    "pages",
    "chat",
    "notes",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Sockets on a session that a view flushed or replaced (login does) are
    # told at once, instead of at their next event.
    "rain_ws.middleware.SessionEndMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "mysite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]
ASGI_APPLICATION = "mysite.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # RAIN_WS_EXAMPLE_DB lets a second copy of the site run on a database of its own.
        "NAME": os.environ.get("RAIN_WS_EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
        # Writers take the lock when their transaction begins, so a socket's
        # session save and a page's queue up instead of failing as locked.
        "OPTIONS": {"transaction_mode": "IMMEDIATE"},
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# One process: the in-memory layer. Several processes (see "Scale-out" in
# docs/deployment.rst): RAIN_WS_REDIS_URL=redis://127.0.0.1:6379/0 puts every
# process on one Redis, and rooms and broadcasts reach all of them.
REDIS_URL = os.environ.get("RAIN_WS_REDIS_URL")
if REDIS_URL:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # More than the 5-second blocking reads of
                        # RedisChannelLayer, should the site switch to it
                        # (redis-py 8 defaults to exactly 5).
                        "socket_timeout": 10,
                        # Replace a connection that died with a Redis restart
                        # rather than lose the message sent through it.
                        "retry": Retry(NoBackoff(), 1, (RedisConnectionError,)),
                    }
                ]
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Django's own login and logout views, at /accounts/login/ and /accounts/logout/,
# and the example's sign-up form at /accounts/signup/.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "notes"
LOGOUT_REDIRECT_URL = "login"

# The idle reaper, off by default as in rain_ws. RAIN_WS_EXAMPLE_IDLE_TIME=20
# turns it on for the example at any number of connections: a page quiet for
# 20 s is disconnected by the server, and the connection page
# (/state/) shows it; its next emit connects it again.
IDLE_TIME = os.environ.get("RAIN_WS_EXAMPLE_IDLE_TIME")
if IDLE_TIME:
    RAIN_WS = {
        "DISCONNECT_IDLE": True,
        "IDLE_TIME": float(IDLE_TIME),
        "IDLE_CHECK_INTERVAL": min(10.0, float(IDLE_TIME) / 2),
        "DISCONNECT_IDLE_ON_MAX_CONN": 0,
    }

USE_TZ = True
# Served by runserver, and by daphne or uvicorn through mysite/asgi.py, while
# DEBUG is on. Nothing comes from another host: the site works offline.
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Show rain_ws's connection log (refused origins, unknown namespaces, handler
# errors) in the runserver console.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"rain_ws": {"handlers": ["console"], "level": "INFO"}},
}
