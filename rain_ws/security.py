"""
The origin check for WebSocket handshakes.

Browsers send their session cookie with a WebSocket handshake from any page,
so a socket opened by a foreign page would act as the user. A handshake whose
``Origin`` names a host outside ``ALLOWED_HOSTS`` (or
``RAIN_WS["ALLOWED_ORIGINS"]``) is refused with HTTP 403. Clients that send no
``Origin`` at all are not browsers (node, python-socketio, mobile apps): no
page can make them carry a user's cookie, so they are let through.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host

from .conf import get_settings

__all__ = ["OriginValidator", "origin_allowed", "refuse_handshake"]

logger = logging.getLogger("rain_ws")


def _allowed_hosts() -> list[str]:
    configured = get_settings().ALLOWED_ORIGINS
    if configured is not None:
        return list(configured)
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        # What Django's own host validation allows in development.
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def origin_allowed(origin: str) -> bool:
    """Whether a browser page at ``origin`` may open a socket here."""
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    if not host:
        return False
    if ":" in host:
        host = f"[{host}]"
    return validate_host(host, _allowed_hosts())


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
                    origin = value.decode("latin-1")
                    if not origin_allowed(origin):
                        return refuse_handshake(receive, send, f"refused a WebSocket from foreign origin {origin!r}")
                    break
        return self.application(scope, receive, send)


async def refuse_handshake(receive: Any, send: Any, reason: str) -> None:
    """Log ``reason`` and refuse the WebSocket handshake (HTTP 403)."""
    logger.warning("%s", reason)
    await receive()
    await send({"type": "websocket.close", "code": 1000})
