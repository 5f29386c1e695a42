"""
docs/quickstart.rst, built as a reader would: ``startproject``, ``startapp``,
then every code block whose caption names a file written into the project
(``mysite/settings.py`` is added to the end of the generated settings), and
run: ``manage.py check`` and ``rain_ws_channels`` print what the page shows,
``collectstatic`` (docs/deployment.rst) collects rain.js, and under uvicorn
the page, its socket and the session rule behave as the page says.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import socketio

from tests.project.docs_pages import captioned_block, captioned_blocks, console_output
from tests.support.browser import chromium, requires_browser
from tests.support.recording import WAIT, until
from tests.support.servers import ROOT, run_server

CHANNEL = "/chat/1.0/chat"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a reader's shell: no test settings, no test database."""
    env = {key: value for key, value in os.environ.items() if key not in ("DJANGO_SETTINGS_MODULE", "RAIN_WS_TEST_DB")}
    env.pop("PYTHONPATH", None)
    return {**env, **extra}


def manage(project: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=project, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The quickstart's project, made from the page."""
    base = tmp_path_factory.mktemp("quickstart")
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite"], cwd=base, env=clean_env(), check=True, timeout=60
    )
    project = base / "mysite"
    manage(project, "startapp", "chat")
    blocks = captioned_blocks("quickstart.rst")
    assert {caption for caption, _ in blocks} >= {
        "mysite/settings.py",
        "mysite/asgi.py",
        "mysite/urls.py",
        "chat/websockets.py",
        "chat/views.py",
        "chat/templates/chat/index.html",
    }
    for caption, code in blocks:
        path = project / caption
        path.parent.mkdir(parents=True, exist_ok=True)
        if caption == "mysite/settings.py":
            path.write_text(path.read_text() + "\n" + code)
        else:
            path.write_text(code)
    manage(project, "migrate", "--noinput")
    return project


@pytest.fixture(scope="module")
def server(project):
    with run_server(
        settings="mysite.settings",
        server="uvicorn",
        application="mysite.asgi:application",
        env={"PYTHONPATH": str(project), "RAIN_WS_TEST_DB": ""},
    ) as server:
        yield server


def test_check_reports_no_issues(project):
    assert manage(project, "check").strip() == "\n".join(console_output("quickstart.rst", "python manage.py check"))


def test_rain_ws_channels_prints_what_the_page_shows(project):
    printed = manage(project, "rain_ws_channels").rstrip("\n").splitlines()
    assert printed == console_output("quickstart.rst", "python manage.py rain_ws_channels")


def test_collectstatic_collects_rain_js(project):
    """docs/deployment.rst: its production settings, then collectstatic, put rain.js in STATIC_ROOT."""
    production = project / "mysite" / "settings_production.py"
    production.write_text("from .settings import *  # noqa: F403\n\n" + captioned_block("deployment.rst", "mysite/settings.py"))
    output = manage(project, "collectstatic", "--noinput", "--settings", "mysite.settings_production")
    assert "static files copied" in output
    assert (project / "staticfiles" / "rain_ws" / "rain.js").read_bytes() == (
        ROOT / "rain_ws" / "static" / "rain_ws" / "rain.js"
    ).read_bytes()
    # The production settings pass rain_ws's checks too (W005, one process on
    # the in-memory layer, is the one warning a site with Redis would not get).
    checked = manage(project, "check", "--deploy", "--settings", "mysite.settings_production")
    assert "rain_ws.E" not in checked and "rain_ws.W001" not in checked


def fetch(url: str, cookie: str | None = None) -> tuple[int, str, list[str]]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return response.status, response.read().decode(), response.headers.get_all("Set-Cookie") or []


def test_the_page_gives_a_session_and_serves_rain_js_under_uvicorn(server):
    status, page, cookies = fetch(server.url + "/")
    assert status == 200
    assert '<script src="/static/rain_ws/rain.js"></script>' in page
    assert any(cookie.startswith("sessionid=") for cookie in cookies)
    status, script, _ = fetch(server.url + "/static/rain_ws/rain.js")
    assert status == 200 and "getSocket" in script


async def session_cookie(server) -> str:
    _, _, cookies = await asyncio.to_thread(fetch, server.url + "/")
    return "; ".join(cookie.split(";")[0] for cookie in cookies)


async def test_the_channel_says_hello_and_acks(server):
    hello = asyncio.get_running_loop().create_future()
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("hello", lambda data: hello.done() or hello.set_result(data), namespace=CHANNEL)
    await sio.connect(
        server.url,
        namespaces=[CHANNEL],
        transports=["websocket"],
        headers={"Cookie": await session_cookie(server)},
        wait_timeout=WAIT,
    )
    try:
        assert await asyncio.wait_for(hello, WAIT) == {"message": "Hello Sockets!"}
        assert await sio.call("new-message", {"text": "hi"}, namespace=CHANNEL, timeout=WAIT) == (
            None,
            {"stored": True},
        )
    finally:
        await sio.disconnect()


async def test_without_a_session_the_socket_is_refused(server):
    refusals = []
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("connect_error", refusals.append, namespace=CHANNEL)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(server.url, namespaces=[CHANNEL], transports=["websocket"], wait_timeout=WAIT)
    await sio.disconnect()
    assert refusals == [{"message": "session required", "data": {"code": "session_required"}}]
    await until(lambda: f"on {CHANNEL}: session required" in server.log(), "the refusal in the server's log")
    assert re.search(rf"refused 127\.0\.0\.1:\d+ on {re.escape(CHANNEL)}: session required", server.log())


@requires_browser
async def test_the_page_in_a_browser(server):
    async with chromium() as browser:
        page = await browser.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(server.url + "/")
        await page.wait_for_function("document.getElementById('hello').textContent === 'Hello Sockets!'")
        await page.fill("input[name=text]", "hi")
        await page.click("button")
        await page.wait_for_function("document.getElementById('status').textContent === 'Stored: true'")
        assert errors == []
