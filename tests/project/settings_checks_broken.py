"""
The test project with a mistake of every kind that ``manage.py check``
reports, for the test that it lists them all at once (tests/test_checks.py).
"""

from .settings import *  # noqa: F403

INSTALLED_APPS = [
    app
    for app in INSTALLED_APPS  # noqa: F405
    if app not in ("daphne", "channels", "django.contrib.sessions")  # W003, W004, E021
] + ["tests.project.checks_broken"]  # E010, E011, E012, E014, E015, E016
del ASGI_APPLICATION  # noqa: F821  W002
MIDDLEWARE = [m for m in MIDDLEWARE if "SessionMiddleware" not in m]  # noqa: F405  E020
DEBUG = False
ALLOWED_HOSTS = ["chat.example.com", "*"]  # W001, and W005 with the in-memory layer
RAIN_WS = {
    "PING_INTERVL": 5,  # E002
    "PING_TIMEOUT": 0,  # E003
    "ALLOWED_ORIGINS": ["example.com"],  # E003
    "MAX_PAYLOAD": 4096,
    "MAX_QUEUED_BYTES": 2048,  # E004
}
