import os
import tempfile
from collections.abc import AsyncIterator

import django
import pytest
import pytest_asyncio

# One database for the whole run, shared by this process (the in-process test
# client, sessions made by tests) and the server processes the tests start.
_database_dir = tempfile.mkdtemp(prefix="rain_ws-tests-")
os.environ["RAIN_WS_TEST_DB"] = os.path.join(_database_dir, "db.sqlite3")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)

from tests.support.browser import chromium  # noqa: E402
from tests.support.recording import RecordingClient  # noqa: E402
from tests.support.servers import run_server  # noqa: E402


@pytest.fixture(autouse=True)
def _refusals_logged_afresh():
    """Every test may log its refusals: the refusal log's rate limit starts anew."""
    from rain_ws.refusals import refusals

    refusals.reset()


@pytest.fixture(autouse=True)
def _no_earlier_happenings():
    """
    Every test starts with the echo channel's ``happened`` list empty, and
    leaves it empty: what sockets of one in-process test did is never read
    by another.
    """
    from tests.project.echo.websockets import happened

    happened.clear()
    yield
    happened.clear()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    """A headless Chromium for the module's browser tests (which run on the module's loop)."""
    async with chromium() as browser:
        yield browser


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


@pytest.fixture
async def clients() -> AsyncIterator[list[RecordingClient]]:
    """
    Recording clients a test appends; all are disconnected after it. (The
    rooms and Redis tests have a ``clients`` fixture of their own.)
    """
    made: list[RecordingClient] = []
    yield made
    for client in made:
        await client.close()
