"""The browser tests' settings, with a session-refresh view that answers 500."""

from .settings import *  # noqa: F403

ROOT_URLCONF = "tests.project.browser.urls_failing_refresh"
