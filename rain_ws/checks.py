"""
rain_ws's Django system checks, run by ``manage.py check``.

They report settings that are valid but likely a mistake; invalid
``RAIN_WS`` values stop start-up instead (see :mod:`rain_ws.conf`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

__all__ = ["check_allowed_hosts"]


@register(Tags.security)
def check_allowed_hosts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """
    W001: ``ALLOWED_HOSTS = ["*"]`` validates no Host header, so a handshake's
    own origin (taken from it) proves nothing about the site it came to.
    """
    if "*" not in settings.ALLOWED_HOSTS:
        return []
    return [
        Warning(
            "ALLOWED_HOSTS contains '*': WebSocket handshakes from browsers are accepted only "
            "from the request's own origin, CSRF_TRUSTED_ORIGINS and RAIN_WS['ALLOWED_ORIGINS'], "
            "and the Host header that the request's own origin is taken from is not validated.",
            hint="List your real hosts in ALLOWED_HOSTS.",
            id="rain_ws.W001",
        )
    ]
