"""
The example project, served the way its README says: the chat channel answers
Socket.IO clients (everyone hears ``new-message``, rooms hear ``say``), the
page loads rain.js and explains how to reach the channel from other clients,
the ASGI application serves rain.js under daphne and uvicorn, and the
documented run command really starts the site.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.support.servers import ROOT, Server, free_port, run_server

EXAMPLE = ROOT / "example_project"
CHANNEL = "/chat/1.0/chat"


def example_env(database: Path) -> dict[str, str]:
    """
    The environment for the example's own processes: its settings, not the
    test project's that this process exports, and a database of its own, so
    the developer's ``example_project/db.sqlite3`` is left alone.
    """
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["RAIN_WS_EXAMPLE_DB"] = str(database)
    return env


@pytest.fixture(scope="module")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The example project on daphne, with a freshly migrated database."""
    database = tmp_path_factory.mktemp("example") / "db.sqlite3"
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=EXAMPLE,
        env=example_env(database),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    with run_server(
        settings="mysite.settings",
        application="mysite.asgi:application",
        env={"PYTHONPATH": f"{EXAMPLE}{os.pathsep}{ROOT}", "RAIN_WS_EXAMPLE_DB": str(database)},
    ) as server:
        yield server


async def chat_round_trip(url: str, **connect: Any) -> tuple[Any, Any, Any]:
    """
    Connect to the chat channel, then emit ``new-message``; return the
    ``hello`` payload, the ack and the ``message`` event that came back.
    """
    client = socketio.AsyncClient(reconnection=False)
    loop = asyncio.get_running_loop()
    hello: asyncio.Future[Any] = loop.create_future()
    message: asyncio.Future[Any] = loop.create_future()
    client.on("hello", hello.set_result, namespace=CHANNEL)
    client.on("message", message.set_result, namespace=CHANNEL)
    await client.connect(url, namespaces=[CHANNEL], transports=["websocket"], wait_timeout=5, **connect)
    try:
        greeting = await asyncio.wait_for(hello, 5)
        ack = await client.call("new-message", {"text": "hi"}, namespace=CHANNEL, timeout=5)
        relayed = await asyncio.wait_for(message, 5)
    finally:
        await client.disconnect()
    return greeting, ack, relayed


def session_cookie(server: Server) -> str:
    """The session cookie the page gives a visitor, as a Cookie header."""
    with urllib.request.urlopen(f"{server.url}/", timeout=10) as response:
        for header in response.headers.get_all("Set-Cookie"):
            if header.startswith("sessionid="):
                return header.split(";", 1)[0]
    raise AssertionError("the page set no session cookie")


async def test_chat_channel_greets_and_acks(example_server: Server) -> None:
    greeting, ack, relayed = await chat_round_trip(
        example_server.url, headers={"Cookie": session_cookie(example_server)}
    )
    assert greeting == {"message": "Hello Sockets!"}
    assert ack == (None, {"stored": True})
    # The line comes back to its sender too, with the name the others see.
    assert relayed["text"] == "hi"
    assert relayed["name"].startswith("Guest ")


async def test_chat_channel_refuses_a_socket_without_session(example_server: Server) -> None:
    client = socketio.AsyncClient(reconnection=False)
    refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client.on("connect_error", refused.set_result, namespace=CHANNEL)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(example_server.url, namespaces=[CHANNEL], transports=["websocket"], wait_timeout=5)
    assert await asyncio.wait_for(refused, 5) == {"message": "session required", "data": {"code": "session_required"}}


async def test_chat_channel_on_its_own_route_from_the_page_origin(example_server: Server) -> None:
    # What a browser on the example's page sends: its Origin and session
    # cookie, on the per-channel route the page lists.
    greeting, ack, _ = await chat_round_trip(
        example_server.url,
        socketio_path="socket.io/chat/1.0/chat",
        headers={"Origin": example_server.url, "Cookie": session_cookie(example_server)},
    )
    assert greeting == {"message": "Hello Sockets!"}
    assert ack == (None, {"stored": True})


def get_page(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def test_page_shows_how_to_connect(example_server: Server) -> None:
    status, page = get_page(f"{example_server.url}/")
    assert status == 200
    assert f'io("{CHANNEL}", {{transports: ["websocket"]}})' in page
    assert f"ws://127.0.0.1:{example_server.port}/socket.io/chat/1.0/chat/" in page
    assert 'transports=["websocket"]' in page


def test_pages_load_rain_js_and_only_local_files(example_server: Server) -> None:
    """
    Every page's scripts, stylesheet and icon come from this server (the
    site works offline), and the ASGI application serves them under daphne.
    """
    for path in ("/", "/state/", "/accounts/login/", "/accounts/signup/"):
        status, page = get_page(f"{example_server.url}{path}")
        assert status == 200
        assets = re.findall(r'(?:src|href)="([^"#]+)"', page)
        assert assets, path
        for asset in assets:
            assert asset.startswith("/"), f"{path} refers to another host: {asset}"
            assert not asset.startswith("//"), f"{path} refers to another host: {asset}"
        scripts = re.findall(r'<script src="([^"]+)"', page)
        if path in ("/", "/state/"):
            # {% rain_ws_client %}: the runtime's configuration, then rain.js.
            assert 'id="rain-ws-config"' in page
            assert "/static/rain_ws/rain.js" in scripts
            assert "data-rain-controller=" in page
        for script in scripts + re.findall(r'data-rain-controller="([^"]+)"', page):
            status, body = get_page(f"{example_server.url}{script}")
            assert status == 200, script
            assert body


def test_uvicorn_serves_rain_js(tmp_path: Path) -> None:
    """
    The uvicorn command of docs/deployment.rst, on the example: with DEBUG,
    mysite/asgi.py serves static files, so the page's rain.js is no 404.
    """
    database = tmp_path / "db.sqlite3"
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=EXAMPLE,
        env=example_env(database),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    with run_server(
        settings="mysite.settings",
        server="uvicorn",
        application="mysite.asgi:application",
        env={"PYTHONPATH": f"{EXAMPLE}{os.pathsep}{ROOT}", "RAIN_WS_EXAMPLE_DB": str(database)},
    ) as server:
        status, page = get_page(f"{server.url}/")
        assert status == 200
        script = re.search(r'<script src="(/static/rain_ws/rain\.js)"', page)
        assert script is not None
        status, body = get_page(f"{server.url}{script.group(1)}")
        assert status == 200
        assert "window.rain" in body


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    """Return once ``port`` accepts connections; fail if ``process`` exits first."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            pytest.fail(f"run_example.sh exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"run_example.sh did not listen in time:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)


def stop_group(pgid: int, process: subprocess.Popen[bytes]) -> None:
    """End the script's process group: runserver and its autoreload child."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.05)


def test_run_command_serves_the_page(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "run_example.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", "scripts/run_example.sh", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=example_env(tmp_path / "db.sqlite3"),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # A new session makes the script the leader of its own process group.
    pgid = process.pid
    try:
        # The first run installs the package into .venv; later runs reuse it.
        wait_for_port(port, process, log, seconds=180)
        status, page = get_page(f"http://127.0.0.1:{port}/")
        assert status == 200
        assert CHANNEL in page
        assert "Hello Sockets!" in page
        # The notes (behind the login page), the connection page, and rain.js.
        for path in ("/notes/", "/state/", "/static/rain_ws/rain.js"):
            assert get_page(f"http://127.0.0.1:{port}{path}")[0] == 200, path
    finally:
        stop_group(pgid, process)
