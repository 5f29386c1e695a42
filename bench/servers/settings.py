"""
Django settings for the benchmark's rain_ws and bare Channels servers.

Only what serving a WebSocket needs: no database is touched on the echo path,
and logging stays at warning level so that no log line is written per event.
The load generator has no Django session to send, and the echo channel does
not use one, so rain_ws is told not to require it.
"""

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "rain_ws",
    "bench.servers.echo",
]
ROOT_URLCONF = "bench.servers.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
RAIN_WS = {"REQUIRE_SESSION": False}
