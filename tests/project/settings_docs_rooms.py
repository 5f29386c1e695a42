"""The test project with the chat component of docs/rooms.rst and its views."""

from .settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.project.docs_chat"]  # noqa: F405
ROOT_URLCONF = "tests.project.urls_docs_rooms"
