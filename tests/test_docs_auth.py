"""
docs/auth.rst end to end: the ``orders`` component (tests/project/orders,
shown by the page) on a real uvicorn, and the page's two clients run as they
are, python-socketio's and socket.io-client's under node, with good, bad,
expired and missing tokens. The server runs with the LOGGING of
docs/logging.rst, whose refusal lines are checked too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from tests.project.orders.tokens import MAX_AGE, make_token
from tests.support.node import JS_DIR, requires_node
from tests.support.recording import until
from tests.support.servers import ROOT, run_server

ORDERS = ROOT / "tests" / "project" / "orders"


@pytest.fixture(scope="module")
def server():
    with run_server(settings="tests.project.settings_docs_auth", server="uvicorn") as server:
        yield server


@pytest.fixture(scope="module")
def user():
    name = f"orders-{os.getpid()}-{time.monotonic_ns()}"
    return User.objects.create_user(name, password="not-used")


def run_client(command: list[str], server, token: str | None, cwd: Path) -> list[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DJANGO_SETTINGS_MODULE", "ORDERS_TOKEN")}
    env["SERVER_URL"] = server.url
    if token is not None:
        env["ORDERS_TOKEN"] = token
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.splitlines()


def python_client(server, token: str, tmp_path: Path) -> list[str]:
    return run_client([sys.executable, str(ORDERS / "client.py")], server, token, tmp_path)


def expired_token(user) -> str:
    with mock.patch("django.core.signing.time.time", return_value=time.time() - MAX_AGE - 60):
        return make_token(user)


def test_python_client_with_a_token(server, user, tmp_path):
    assert python_client(server, make_token(user), tmp_path) == [
        f"connected as {user.username}",
        f"whoami: (None, {{'username': '{user.username}', 'scopes': ['orders:read']}})",
        "cancel: ({'message': 'this token may only read orders', 'code': 'forbidden'}, None)",
    ]


def test_a_token_with_more_scopes_may_write(server, user, tmp_path):
    output = python_client(server, make_token(user, scopes=["orders:read", "orders:write"]), tmp_path)
    assert output[-1] == "cancel: (None, {'cancelled': 42})"


def test_python_client_refused_with_the_errors_code(server, user, tmp_path):
    assert python_client(server, "not-a-token", tmp_path) == ["refused: invalid token invalid_token"]
    assert python_client(server, expired_token(user), tmp_path) == ["refused: token expired token_expired"]


def test_a_deactivated_users_token_is_refused(server, tmp_path):
    gone = User.objects.create_user(f"gone-{time.monotonic_ns()}", password="not-used")
    token = make_token(gone)
    gone.is_active = False
    gone.save()
    assert python_client(server, token, tmp_path) == ["refused: this token's user is gone invalid_token"]


async def test_refusals_are_logged_with_the_documented_format(server, tmp_path):
    await sync_to_async(python_client)(server, "forged", tmp_path)
    await until(lambda: "invalid token" in server.log(), "the refusal in the server's log")
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING rain_ws: "
        r"refused 127\.0\.0\.1:\d+ on /orders/1\.0/updates: invalid token$",
        server.log(),
        re.M,
    )


@pytest.fixture
def node_dir(tmp_path) -> Path:
    """A directory with the page's client.mjs and tests/js's node_modules, as a reader's project would have."""
    shutil.copy(ORDERS / "client.mjs", tmp_path / "client.mjs")
    (tmp_path / "node_modules").symlink_to(JS_DIR / "node_modules", target_is_directory=True)
    return tmp_path


@requires_node
def test_node_client_with_a_token(server, user, node_dir):
    assert run_client(["node", "client.mjs"], server, make_token(user), node_dir) == [
        f"connected as {user.username}",
        f"whoami: {{ username: '{user.username}', scopes: [ 'orders:read' ] }}",
    ]


@requires_node
def test_node_client_refused(server, node_dir):
    assert run_client(["node", "client.mjs"], server, "forged", node_dir) == ["refused: invalid token invalid_token"]
    assert run_client(["node", "client.mjs"], server, None, node_dir) == [
        "refused: send your API token as auth.token token_required"
    ]

