"""
docs/routing.rst, "With Channels consumers of your own": its consumer and
its asgi.py, taken from the page, serve a Channels consumer and rain_ws's
channels side by side, both behind rain_ws's origin check; so does the
page's alternative, websocket_application() routed last.
"""

from __future__ import annotations

import importlib.util
import sys
import time

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.urls import path, re_path

from rain_ws.routing import OriginValidator, websocket_application
from rain_ws.testing import ConnectionRefused, SocketTestClient, login_session
from tests.project.docs_pages import captioned_block

ECHO = "/echo/2.0/echo"  # a channel of the test project that needs no session
FOREIGN = [(b"origin", b"https://elsewhere.example"), (b"host", b"testserver")]


@pytest.fixture(scope="module")
def page_modules(tmp_path_factory):
    """The page's live/consumers.py and mysite/asgi.py, imported as a project would."""
    base = tmp_path_factory.mktemp("combined")
    (base / "live").mkdir()
    (base / "live" / "__init__.py").write_text("")
    (base / "live" / "consumers.py").write_text(captioned_block("routing.rst", "live/consumers.py"))
    asgi_path = base / "combined_asgi.py"
    asgi_path.write_text(captioned_block("routing.rst", "mysite/asgi.py"))
    sys.path.insert(0, str(base))
    try:
        spec = importlib.util.spec_from_file_location("combined_asgi", asgi_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        from live.consumers import TickerConsumer

        yield module.application.application_mapping["websocket"], TickerConsumer
    finally:
        sys.path.remove(str(base))
        for name in ("live", "live.consumers"):
            sys.modules.pop(name, None)


def alternative(consumer):
    """The page's other way: websocket_application() whole, routed last."""
    return URLRouter(
        [
            path("ws/ticker/", OriginValidator(AuthMiddlewareStack(consumer.as_asgi()))),
            re_path(r"", websocket_application()),
        ]
    )


@pytest.fixture(params=["page", "alternative"])
def application(request, page_modules):
    websocket, consumer = page_modules
    return websocket if request.param == "page" else alternative(consumer)


async def session_cookie() -> list[tuple[bytes, bytes]]:
    name = f"ticker-{time.monotonic_ns()}"
    user = await sync_to_async(User.objects.create_user)(name, password="not-used")
    key = await login_session(user)
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode()), (b"host", b"testserver")], name


async def test_the_consumer_has_the_sessions_user(application):
    headers, name = await session_cookie()
    communicator = WebsocketCommunicator(application, "/ws/ticker/", headers)
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_json_from() == {"hello": name}
    await communicator.send_json_to({"price": 42})
    assert await communicator.receive_json_from() == {"echo": {"price": 42}}
    await communicator.disconnect()


async def test_the_consumer_without_a_session(application):
    communicator = WebsocketCommunicator(application, "/ws/ticker/")
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_json_from() == {"hello": "anonymous"}
    await communicator.disconnect()


async def test_rain_ws_channels_next_to_it(application):
    async with SocketTestClient(ECHO, application=application) as client:
        assert (await client.receive("hello"))[0]["message"] == "Hello Sockets!"
        assert await client.call("echo", 1, "two") == [None, [1, "two"]]


async def test_both_refuse_foreign_pages(application):
    communicator = WebsocketCommunicator(application, "/ws/ticker/", FOREIGN)
    connected, _ = await communicator.connect()
    assert not connected
    with pytest.raises(ConnectionRefused, match="handshake was refused"):
        async with SocketTestClient(ECHO, headers=FOREIGN, application=application):
            pass
