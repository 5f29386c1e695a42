"""The test project without rain_ws in INSTALLED_APPS (tests/test_startup_errors.py)."""

from .settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "rain_ws"]  # noqa: F405
