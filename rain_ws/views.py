"""HTTP views of rain_ws."""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .conf import get_settings
from .metrics import render_prometheus
from .refusals import refusals
from .registry import registry
from .runtime import runtime
from .security import is_own_origin, request_origin_allowed
from .session_store import SessionExpired, load_session
from .transports import polling

__all__ = ["is_websocket_handshake", "metrics", "refuse_websocket_handshake", "session_refresh", "socket_io"]

logger = logging.getLogger("rain_ws")


async def metrics(request: HttpRequest) -> HttpResponse:
    """
    This process's rain_ws metrics in the Prometheus text format.

    Not in ``rain_ws.urls``: route it yourself, where only your monitoring
    reaches it. Needs ``prometheus_client`` (the ``prometheus`` extra: ``pip install "/path/to/rain_ws[prometheus]"``).
    Counts are per process; with several server processes, scrape each. An
    async view, so that it runs on the server's event loop, where the
    connections live.
    """
    body, content_type = render_prometheus(runtime().tracker.idle_count())
    return HttpResponse(body, content_type=content_type)


def is_websocket_handshake(request: HttpRequest) -> bool:
    """
    Whether ``request`` is a WebSocket handshake (``Upgrade: websocket``, or
    the Socket.IO clients' ``transport=websocket``) that reached Django's
    HTTP views instead of a WebSocket route.
    """
    upgrade = request.headers.get("Upgrade", "")
    if "websocket" in (token.strip().lower() for token in upgrade.split(",")):
        return True
    return request.GET.get("transport") == "websocket"


#: Why a WebSocket handshake reaches the HTTP views, and the fix.
NOT_SERVING_WEBSOCKETS = (
    "This WebSocket handshake reached Django's HTTP views: the server is not serving WebSockets. "
    "Serve the project with an ASGI server (daphne or uvicorn) running the application of asgi.py, "
    'whose ProtocolTypeRouter has "websocket": rain_ws.routing.websocket_application(). '
    "With `manage.py runserver`, put 'daphne' first in INSTALLED_APPS (before "
    "django.contrib.staticfiles) and set ASGI_APPLICATION to that application, or runserver "
    "serves WSGI, which has no WebSockets. Behind a proxy, forward the Upgrade and Connection headers."
)


def refuse_websocket_handshake(request: HttpRequest) -> JsonResponse | None:
    """
    The answer to a WebSocket handshake that reached the HTTP views (an
    Engine.IO error object, HTTP 400, also logged as a warning, since the
    browser shows only the status), or None for any other request.
    """
    if not is_websocket_handshake(request):
        return None
    refusals.refused("%s %s: %s", request.method, request.get_full_path(), NOT_SERVING_WEBSOCKETS)
    return JsonResponse({"code": 3, "message": NOT_SERVING_WEBSOCKETS}, status=400)


#: Why long-polling needs an ASGI server.
NOT_ASGI = (
    "Socket.IO long-polling needs an ASGI server (daphne or uvicorn): a long-polling session "
    "lives in the server's event loop from one request to the next. With `manage.py runserver`, "
    "put 'daphne' first in INSTALLED_APPS and set ASGI_APPLICATION."
)


@csrf_exempt
async def socket_io(request: HttpRequest) -> HttpResponse:
    """
    Serve Engine.IO's HTTP long-polling transport at the Socket.IO path (and
    each channel's own route below it), on whichever process the request
    reaches (see :mod:`rain_ws.transports.polling`).

    Exempt from CSRF like any Socket.IO endpoint: a session's requests are
    addressed by its sid, which only the page that opened it knows, and a
    browser's cross-origin requests are refused by the origin check, as
    WebSocket handshakes are. A WebSocket handshake landing here means the
    server does not serve WebSockets: :func:`refuse_websocket_handshake` says
    how to fix it.
    """
    refused = refuse_websocket_handshake(request)
    if refused is not None:
        return refused
    if not isinstance(request, ASGIRequest):
        refusals.refused("%s %s: %s", request.method, request.get_full_path(), NOT_ASGI)
        return JsonResponse({"code": 3, "message": NOT_ASGI}, status=400)
    if not request_origin_allowed(request):
        refusals.refused("refused long-polling from foreign origin %r", request.headers.get("Origin"))
        return JsonResponse({"code": 4, "message": "Forbidden"}, status=403)
    if request.method == "OPTIONS":  # a CORS preflight, from an origin the settings name
        return _with_cors(request, HttpResponse(status=204))
    prefix = get_settings().PATH
    own = request.path[len(prefix) :].strip("/")
    namespace = None
    if own:
        namespace = "/" + own
        if registry.get(namespace) is None:
            return JsonResponse({"code": 0, "message": "Transport unknown"}, status=400)
    try:
        body = request.body.decode() if request.method == "POST" else ""
    except RequestDataTooBig:
        status, content, content_type = polling.refuse_too_big(runtime(), request.GET.dict())
        return HttpResponse(content, status=status, content_type=content_type)
    except UnicodeDecodeError:
        return JsonResponse({"code": 3, "message": "Bad request"}, status=400)
    status, content, content_type = await polling.handle(
        runtime(), request.scope, request.method or "GET", request.GET.dict(), body, namespace
    )
    response = HttpResponse(content, status=status, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return _with_cors(request, response)


def _with_cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """
    Let a page of another origin that passed the origin check (one named by
    ``CSRF_TRUSTED_ORIGINS`` or ``RAIN_WS["ALLOWED_ORIGINS"]``) read the
    answer, with its cookies: the CORS headers name that origin, never ``*``.
    """
    origin = request.headers.get("Origin")
    if origin is None or is_own_origin(request, origin):
        return response
    response["Access-Control-Allow-Origin"] = origin
    response["Access-Control-Allow-Credentials"] = "true"
    response["Vary"] = "Origin"
    if request.method == "OPTIONS":
        response["Access-Control-Allow-Methods"] = "GET, POST"
        response["Access-Control-Allow-Headers"] = request.headers.get("Access-Control-Request-Headers", "content-type")
        response["Access-Control-Max-Age"] = "600"
    return response


@require_POST
def session_refresh(request: HttpRequest) -> HttpResponse:
    """
    Extend the session of a page that talks only over websockets.

    WebSocket frames carry no cookies, so the session cookie of such a page
    would expire while the user is active. The browser runtime posts here
    shortly before it does, when there was socket activity: the session is
    saved again, which moves its expiry forward and sends a fresh cookie
    (204). Without a live session the answer is 401, and the runtime
    publishes ``session_expired``. CSRF-protected like any POST.
    """
    session = request.session
    key = session.session_key
    try:
        if not key:
            raise SessionExpired
        load_session(key)
    except SessionExpired:
        return JsonResponse(
            {"error": "session_expired", "message": "There is no live session to refresh."},
            status=401,
        )
    session.modified = True
    return HttpResponse(status=204)
