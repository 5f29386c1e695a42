import os

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
django.setup()

from tests.support.servers import run_server  # noqa: E402


@pytest.fixture(scope="session")
def daphne_server():
    """The test project on daphne."""
    with run_server() as server:
        yield server


@pytest.fixture(scope="session")
def uvicorn_server():
    """The test project on uvicorn."""
    with run_server(server="uvicorn") as server:
        yield server


@pytest.fixture(scope="session")
def suite_server():
    """The test project on daphne with the settings of the official protocol suite."""
    with run_server(settings="tests.project.settings_suite") as server:
        yield server
