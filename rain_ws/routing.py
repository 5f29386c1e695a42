"""
WebSocket routes for every channel, and the ASGI application that serves them.

``websocket_urlpatterns`` has one multiplexed endpoint at ``RAIN_WS["PATH"]``
(``/socket.io/``, where Socket.IO clients look by default), on which every
channel is a namespace and a page's channels share one connection, plus one
route per channel at ``<PATH><channel>/`` that accepts only that channel's
namespace, so a proxy can send one component's traffic to the servers that
host it.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qsl

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIRequest
from django.urls import URLPattern, re_path

from .conf import get_settings
from .transports.websocket import SocketIOConsumer
from .registry import registry
from .security import OriginValidator, refuse_handshake
from .runtime import runtime
from .transports import polling
from .views import socket_io

__all__ = [
    "ChannelRouter",
    "LongPollingFirst",
    "channel_path",
    "check_can_serve",
    "get_websocket_urlpatterns",
    "http_application",
    "websocket_application",
]


def channel_path(namespace: str) -> str:
    """The URL path of a channel's own route, e.g. ``/socket.io/chat/1.0/chat/``."""
    return f"{get_settings().PATH}{namespace.lstrip('/')}/"


def get_websocket_urlpatterns() -> list[URLPattern]:
    """The routes of every registered channel, from the current settings."""
    path = get_settings().PATH
    patterns = [re_path(rf"^{re.escape(path.lstrip('/'))}$", SocketIOConsumer.as_asgi())]
    for name in registry.channels:
        if name != "/":
            own = channel_path(name).lstrip("/")
            patterns.append(re_path(rf"^{re.escape(own)}$", SocketIOConsumer.as_asgi(namespace=name)))
    return patterns


class ChannelRouter:
    """
    The routes of :func:`get_websocket_urlpatterns`, as one dict lookup.

    Like the middleware in front of it, it returns the consumer's coroutine
    rather than awaiting it, so a connection keeps no router frame alive.
    """

    _asgi_single_callable = True

    def __init__(self) -> None:
        path = get_settings().PATH
        self.routes: dict[str, str | None] = {path: None}
        for name in registry.channels:
            if name != "/":
                self.routes[channel_path(name)] = name

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if path not in self.routes:
            return refuse_handshake(receive, send, f"refused a WebSocket to {path!r}: no channel is served there")
        return SocketIOConsumer(self.routes[path])(scope, receive, send)


def websocket_application() -> Any:
    """
    The ASGI application for ``"websocket"`` in ``ProtocolTypeRouter``: the
    origin check and every channel's route. The consumer reads the session
    cookie itself and resolves the session and user at the first CONNECT
    (see :mod:`rain_ws.sessions`); they are then in the scope as
    ``scope["session"]`` and ``scope["user"]``, as Channels' auth middleware
    would put them.

    To compose your own stack, use :class:`~rain_ws.security.OriginValidator`
    and Channels' ``URLRouter`` over ``websocket_urlpatterns``.

    Raises ImproperlyConfigured, saying what to do, when the project cannot
    serve its channels: Django not set up yet, ``rain_ws`` missing from
    ``INSTALLED_APPS``, an invalid ``RAIN_WS``, or a problem in a websocket
    module (``manage.py check`` lists those too). A server started without
    the system checks (daphne or uvicorn on the command line) thus stops at
    start-up rather than refusing every namespace later.
    """
    check_can_serve()
    return OriginValidator(ChannelRouter())


def http_application(application: Any) -> Any:
    """
    The ASGI application for ``"http"`` in ``ProtocolTypeRouter``: Django's
    (``application``), with the Socket.IO path's long-polling requests
    answered before it (see :class:`LongPollingFirst`). Optional: with
    ``"http": get_asgi_application()`` and ``include("rain_ws.urls")``,
    long-polling works too, at several times the cost per request.
    """
    check_can_serve()
    return LongPollingFirst(application)


class LongPollingFirst:
    """
    ASGI middleware answering the long-polling requests of the Socket.IO
    path (and of each channel's route below it) itself, and passing every
    other request on to the application it wraps.

    Through Django's handler, each request also pays for the middleware, URL
    resolution, the request signals and a thread hop to close database
    connections: about 0.6 ms of CPU, ten times what answering a poll
    costs. Here the request goes straight to the same view,
    :func:`rain_ws.views.socket_io`, which checks the origin as always;
    Django's middleware (sessions, CSRF) does not run, and nothing of the
    view needs it.
    """

    def __init__(self, application: Any) -> None:
        self.application = application
        self.prefix = get_settings().PATH

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.application(scope, receive, send)
            return
        method = scope["method"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        body = []
        size = 0
        limit = get_settings().MAX_PAYLOAD
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                # Not read any further: no body over MAX_PAYLOAD is kept.
                await _respond(receive, send, _answer_poll(_at_once(polling.refuse_too_big(runtime(), query))), "POST")
                return
            body.append(chunk)
            if not message.get("more_body"):
                break
        content = b"".join(body)
        if (
            "sid" in query
            and method in ("GET", "POST")
            and scope["path"] == self.prefix
            and not any(name == b"origin" for name, _ in scope.get("headers", ()))
        ):
            # A poll of an open session from a client that names no origin
            # (not a browser's cross-origin request): straight to the
            # session, without making Django request and response objects.
            try:
                text = content.decode()
            except UnicodeDecodeError:
                text = None
            if text is not None:
                answer = _answer_poll(polling.handle(runtime(), scope, method, query, text, None))
                await _respond(receive, send, answer, method)
                return
        # Anything else (a handshake, a browser's request, a channel's own
        # route) goes through the view, with its origin check and CORS.
        request = ASGIRequest(scope, io.BytesIO(content))
        await _respond(receive, send, _answer_request(socket_io(request)), method)


async def _at_once(answer: polling.Response) -> polling.Response:
    return answer


async def _answer_poll(answering: Awaitable[polling.Response]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status, body, content_type = await answering
    headers = [(b"content-type", content_type.encode()), (b"cache-control", b"no-store")]
    return status, headers, body.encode()


async def _answer_request(answering: Awaitable[Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    response = await answering
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    return response.status_code, headers, response.content


async def _respond(receive: Any, send: Any, answering: Any, method: str) -> None:
    """
    Send the answer. A GET may wait for the session's output: if the client
    goes away meanwhile, the answer is cancelled, so what it would have
    taken stays for the next GET, as under Django's own handler.
    """
    if method == "GET":
        # Watched from a task of its own; the answer is awaited in this one.
        waiting = asyncio.current_task()
        answered = False

        def left(watch: asyncio.Future[None]) -> None:
            if not watch.cancelled() and not answered:
                waiting.cancel()  # type: ignore[union-attr]

        leaving = asyncio.ensure_future(_disconnected(receive))
        leaving.add_done_callback(left)
        try:
            status, headers, body = await answering
            answered = True
        except asyncio.CancelledError:
            if leaving.done() and not leaving.cancelled():
                return  # the client left: nothing to answer
            raise
        finally:
            leaving.cancel()
    else:
        status, headers, body = await answering
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def check_can_serve() -> None:
    """Raise ImproperlyConfigured, with the fix, if the channels cannot be served."""
    if not apps.ready:
        raise ImproperlyConfigured(
            "websocket_application() was called before Django was set up. In asgi.py, call "
            "django_asgi_app = get_asgi_application() first, then import and call "
            "rain_ws.routing.websocket_application()."
        )
    if not apps.is_installed("rain_ws"):
        raise ImproperlyConfigured(
            "websocket_application() needs 'rain_ws' in INSTALLED_APPS: without it no "
            "component's websockets module is discovered, and every Socket.IO namespace would be "
            "refused as 'Invalid namespace'. Add 'rain_ws' to INSTALLED_APPS in your settings, "
            "as in the quickstart: [\"daphne\", ..., \"channels\", \"rain_ws\", <your components>]."
        )
    get_settings()  # raises, naming every problem of RAIN_WS
    if registry.problems:
        raise ImproperlyConfigured(
            "rain_ws found problems in the websocket handlers (`manage.py check` lists them "
            "too):\n" + "\n".join(f"- ({problem.error.id}) {problem}" for problem in registry.problems)
        )


def __getattr__(name: str) -> Any:
    # ``websocket_urlpatterns`` is built on access, after the app registry is
    # ready, so importing this module from asgi.py never races discovery.
    if name == "websocket_urlpatterns":
        return get_websocket_urlpatterns()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
