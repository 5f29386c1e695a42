"""The test project as a fresh project has it: no LOGGING setting for rain_ws."""

from .settings import *  # noqa: F403

LOGGING: dict = {}
