"""
The test project with a database that gives up on a lock after 0.2 s rather
than Python's default 5 s, so a test holding the SQLite file locked sees the
session store fail quickly.
"""

from .settings import *  # noqa: F403

_default = DATABASES["default"]  # noqa: F405
DATABASES = {"default": {**_default, "OPTIONS": {**_default.get("OPTIONS", {}), "timeout": 0.2}}}
