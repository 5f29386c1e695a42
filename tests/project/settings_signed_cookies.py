"""The test project with sessions kept in the browser's signed cookie."""

from .settings import *  # noqa: F403

SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
