"""Errors that say what to do: start-up in asgi.py, handshakes over HTTP, the template tag."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template
from django.test import Client, RequestFactory, override_settings

from rain_ws.registry import Problem, registry
from rain_ws.routing import websocket_application

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def keep_registry(monkeypatch):
    monkeypatch.setattr(registry, "channels", registry.channels)
    monkeypatch.setattr(registry, "problems", registry.problems)
    return registry


# websocket_application(), as asgi.py calls it


def test_websocket_application_without_rain_ws_installed(keep_registry):
    apps = [app for app in settings.INSTALLED_APPS if app != "rain_ws"]
    with override_settings(INSTALLED_APPS=apps):
        with pytest.raises(ImproperlyConfigured) as raised:
            websocket_application()
    message = str(raised.value)
    assert "needs 'rain_ws' in INSTALLED_APPS" in message
    assert "'Invalid namespace'" in message
    assert "Add 'rain_ws' to INSTALLED_APPS" in message


def test_asgi_py_without_rain_ws_installed_stops_at_start_up():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.project.settings_no_rain_ws"}
    result = subprocess.run(
        [sys.executable, "-c", "import tests.project.asgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "ImproperlyConfigured: websocket_application() needs 'rain_ws' in INSTALLED_APPS" in result.stderr


def test_websocket_application_before_django_is_set_up():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.project.settings"}
    code = "from rain_ws.routing import websocket_application; websocket_application()"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "called before Django was set up" in result.stderr
    assert "get_asgi_application() first" in result.stderr


def test_websocket_application_with_invalid_settings_names_every_problem():
    with override_settings(RAIN_WS={"PING_TIMEOUT": 0, "PATH": "socket.io"}):
        with pytest.raises(ImproperlyConfigured) as raised:
            websocket_application()
    message = str(raised.value)
    assert "PING_TIMEOUT'] must be a positive number" in message
    assert "PATH'] must start and end with '/'" in message
    assert "manage.py check" in message


def test_websocket_application_with_a_malformed_handler_module(keep_registry):
    error = Error("handle() cannot be called as handle(socket).", obj="chat.websockets", id="rain_ws.E011")
    keep_registry.problems = [Problem("chat", error)]
    with pytest.raises(ImproperlyConfigured) as raised:
        websocket_application()
    assert "- (rain_ws.E011) chat.websockets: handle() cannot be called as handle(socket)." in str(raised.value)


# A WebSocket handshake that reached the HTTP views


@pytest.mark.parametrize(
    "query, headers",
    [
        ("?EIO=4&transport=websocket", {"HTTP_UPGRADE": "websocket", "HTTP_CONNECTION": "Upgrade"}),
        ("?EIO=4", {"HTTP_UPGRADE": "WebSocket", "HTTP_CONNECTION": "keep-alive, Upgrade"}),
        # A proxy that drops the Upgrade header: the query still tells.
        ("?EIO=4&transport=websocket", {}),
    ],
)
def test_websocket_handshake_over_http_says_the_server_serves_no_websockets(caplog, query, headers):
    with caplog.at_level(logging.WARNING, logger="rain_ws"):
        response = Client().get(f"/socket.io/{query}", **headers)
    assert response.status_code == 400
    message = json.loads(response.content)["message"]
    assert "the server is not serving WebSockets" in message
    assert "'daphne' first in INSTALLED_APPS" in message
    assert "ASGI_APPLICATION" in message
    assert "ASGI server" in message
    assert 'transports: ["websocket"]' not in message
    # The browser shows only the status: the server's log says why.
    assert "the server is not serving WebSockets" in caplog.text


def test_a_channel_route_over_http_gets_the_same_answer():
    response = Client().get("/socket.io/echo/2.0/echo/?EIO=4&transport=websocket", HTTP_UPGRADE="websocket")
    assert "not serving WebSockets" in json.loads(response.content)["message"]


def test_polling_under_wsgi_says_it_needs_an_asgi_server():
    response = Client().get("/socket.io/?EIO=4&transport=polling")
    assert response.status_code == 400
    assert "needs an ASGI server" in json.loads(response.content)["message"]


# {% rain_ws_client %}


def request_with_session():
    request = RequestFactory().get("/")
    SessionMiddleware(lambda r: None).process_request(request)
    return request


def test_tag_without_rain_ws_urls_says_what_to_include():
    template = Template("{% load rain_ws %}{% rain_ws_client %}")
    with override_settings(ROOT_URLCONF="tests.project.urls_without_rain_ws"):
        with pytest.raises(ImproperlyConfigured) as raised:
            template.render(Context({"request": request_with_session()}))
    message = str(raised.value)
    assert 'path("", include("rain_ws.urls"))' in message
    assert "'tests.project.urls_without_rain_ws'" in message


def test_tag_without_session_middleware_says_what_to_add():
    template = Template("{% load rain_ws %}{% rain_ws_client %}")
    with pytest.raises(ImproperlyConfigured, match="SessionMiddleware"):
        template.render(Context({"request": RequestFactory().get("/")}))
