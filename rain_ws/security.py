"""
The origin check for WebSocket handshakes.

Browsers send their session cookie with a WebSocket handshake from any page,
and the same-origin policy does not apply to WebSockets, so a socket opened
by a foreign page would act as the user. The handshake is therefore held to
the rules Django's CSRF middleware applies to an unsafe request's ``Origin``:
it must be the request's own origin (scheme, host and port, with the host in
``ALLOWED_HOSTS``), or be listed in ``CSRF_TRUSTED_ORIGINS`` or
``RAIN_WS["ALLOWED_ORIGINS"]``. Anything else, ``Origin: null`` included, is
refused with HTTP 403. Clients that send no ``Origin`` at all are not browsers
(node, python-socketio, mobile apps): no page can make them carry a user's
cookie, so they are let through.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from django.utils.http import is_same_domain

from .conf import get_settings
from .refusals import refusals

__all__ = ["OriginValidator", "is_own_origin", "origin_allowed", "refuse_handshake", "request_origin_allowed"]


def _as_request(scope: Mapping[str, Any]) -> ASGIRequest:
    """
    The handshake as Django sees an HTTP request, so that its own code reads
    the host (``USE_X_FORWARDED_HOST``, ``ALLOWED_HOSTS`` and its DEBUG
    defaults) and the scheme (``SECURE_PROXY_SSL_HEADER``) from the headers.
    """
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return ASGIRequest({**scope, "method": "GET", "scheme": scheme}, io.BytesIO())


def _trusted(origin: str, patterns: Iterable[str]) -> bool:
    """
    Whether ``origin`` matches one of ``patterns`` as Django matches
    ``CSRF_TRUSTED_ORIGINS``: exactly, or ``scheme://*.example.com`` for
    example.com and its subdomains with the pattern's scheme and port.
    """
    try:
        scheme, netloc = urlsplit(origin)[:2]
    except ValueError:
        return False
    for pattern in patterns:
        if "*" not in pattern:
            if origin == pattern:
                return True
            continue
        allowed = urlsplit(pattern)
        if allowed.scheme == scheme and is_same_domain(netloc, allowed.netloc.lstrip("*")):
            return True
    return False


def origin_allowed(scope: Mapping[str, Any]) -> bool:
    """Whether the WebSocket handshake in ``scope`` may go on, by its ``Origin`` header."""
    return request_origin_allowed(_as_request(scope))


def is_own_origin(request: HttpRequest, origin: str) -> bool:
    """
    Whether ``origin`` is the request's own (its scheme, and its host as
    Django reads it). A host outside ``ALLOWED_HOSTS`` is no origin to trust:
    the trusted lists may still name it.
    """
    try:
        return origin == f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        return False


def request_origin_allowed(request: HttpRequest) -> bool:
    """Whether ``request`` (a handshake, or a long-polling request) may go on, by its ``Origin`` header."""
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None or is_own_origin(request, origin):
        return True
    return _trusted(origin, (*settings.CSRF_TRUSTED_ORIGINS, *(get_settings().ALLOWED_ORIGINS or ())))


class OriginValidator:
    """
    ASGI middleware refusing cross-origin WebSocket handshakes.

    It hands the connection on by returning the inner application's
    awaitable rather than awaiting it, so it keeps no frame of its own alive
    for the life of every connection.
    """

    _asgi_single_callable = True

    def __init__(self, application: Any) -> None:
        self.application = application

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        if scope["type"] == "websocket":
            for name, value in scope.get("headers", ()):
                if name == b"origin":
                    if not origin_allowed(scope):
                        origin = value.decode("latin-1")
                        return refuse_handshake(receive, send, f"refused a WebSocket from foreign origin {origin!r}")
                    break
        return self.application(scope, receive, send)


async def refuse_handshake(receive: Any, send: Any, reason: str) -> None:
    """Log ``reason`` and refuse the WebSocket handshake (HTTP 403)."""
    refusals.refused("%s", reason)
    await receive()
    await send({"type": "websocket.close", "code": 1000})
