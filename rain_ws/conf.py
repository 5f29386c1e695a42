"""
``settings.RAIN_WS``: defaults and validation.

The settings are read and checked once, when the app registry is ready, so a
typo stops start-up with a clear message instead of surfacing on the first
connection. :func:`get_settings` returns the validated values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

__all__ = ["RainSettings", "get_settings"]

#: The largest message daphne accepts by default (its
#: ``--websocket_max_message_size``); MAX_PAYLOAD may not exceed it.
SERVER_MAX_MESSAGE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RainSettings:
    """The validated ``settings.RAIN_WS``; times are in seconds."""

    PATH: str = "/socket.io/"
    PING_INTERVAL: float = 25.0
    PING_TIMEOUT: float = 20.0
    CONNECT_TIMEOUT: float = 45.0
    MAX_PAYLOAD: int = 1_000_000
    MAX_ATTACHMENTS: int = 10
    ALLOWED_ORIGINS: tuple[str, ...] | None = None
    REQUIRE_SESSION: bool = True
    DISCONNECT_IDLE: bool = False
    IDLE_TIME: float = 1200.0
    IDLE_CHECK_INTERVAL: float = 10.0
    DISCONNECT_IDLE_ON_MAX_CONN: int = 2000
    MAX_CONNECTIONS: int | None = None
    MAX_UNREAD_BYTES: int = 4 * 1024 * 1024
    MAX_QUEUED_EVENTS: int = 1000
    MAX_QUEUED_BYTES: int = 4 * 1024 * 1024
    MAX_AUTH_BYTES: int = 16 * 1024


_SECONDS = ("PING_INTERVAL", "PING_TIMEOUT", "CONNECT_TIMEOUT", "IDLE_TIME", "IDLE_CHECK_INTERVAL")
_FLAGS = ("REQUIRE_SESSION", "DISCONNECT_IDLE")


def _validate(raw: object) -> RainSettings:
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("RAIN_WS must be a dict.")
    known = RainSettings.__dataclass_fields__
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ImproperlyConfigured(
            f"RAIN_WS has unknown key(s) {', '.join(unknown)}; "
            f"valid keys are {', '.join(sorted(known))}."
        )
    values = dict(raw)
    for name in _SECONDS:
        if name in values:
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ImproperlyConfigured(
                    f"RAIN_WS[{name!r}] must be a positive number of seconds, got {value!r}."
                )
            values[name] = float(value)
    for name, low, high in (
        ("MAX_PAYLOAD", 1024, SERVER_MAX_MESSAGE),
        ("MAX_ATTACHMENTS", 0, 10_000),
        ("DISCONNECT_IDLE_ON_MAX_CONN", 0, 10**9),
        ("MAX_CONNECTIONS", 1, 10**9),
        ("MAX_UNREAD_BYTES", 1024, 2**40),
        ("MAX_QUEUED_EVENTS", 1, 10**6),
        ("MAX_QUEUED_BYTES", 1024, 2**40),
        ("MAX_AUTH_BYTES", 0, SERVER_MAX_MESSAGE),
    ):
        if name in values and not (name == "MAX_CONNECTIONS" and values[name] is None):
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ImproperlyConfigured(
                    f"RAIN_WS[{name!r}] must be an integer from {low} to {high}, got {value!r}."
                )
    if "PATH" in values:
        path = values["PATH"]
        if not isinstance(path, str) or not path.startswith("/") or not path.endswith("/") or len(path) < 2:
            raise ImproperlyConfigured(
                f"RAIN_WS['PATH'] must start and end with '/', like '/socket.io/', got {path!r}."
            )
    for name in _FLAGS:
        if name in values and not isinstance(values[name], bool):
            raise ImproperlyConfigured(f"RAIN_WS[{name!r}] must be True or False, got {values[name]!r}.")
    if values.get("ALLOWED_ORIGINS") is not None:
        origins = values["ALLOWED_ORIGINS"]
        if isinstance(origins, str) or not all(isinstance(o, str) for o in origins):
            raise ImproperlyConfigured(
                "RAIN_WS['ALLOWED_ORIGINS'] must be a list of origins, like CSRF_TRUSTED_ORIGINS."
            )
        for origin in origins:
            if "://" not in origin:
                # It took host patterns, like ALLOWED_HOSTS, before: say how to convert them.
                if origin == "*":
                    fix = "'*' (any origin) is no longer accepted: list each origin"
                else:
                    subdomains = "*" if origin.startswith(".") else ""
                    fix = f"write {'https://' + subdomains + origin!r} for {origin!r}"
                raise ImproperlyConfigured(
                    "RAIN_WS['ALLOWED_ORIGINS'] now takes origins with a scheme, like "
                    f"CSRF_TRUSTED_ORIGINS, instead of host patterns: {fix}."
                )
        values["ALLOWED_ORIGINS"] = tuple(origins)
    result = RainSettings(**values)
    if (
        result.DISCONNECT_IDLE
        and result.MAX_CONNECTIONS is not None
        and result.MAX_CONNECTIONS < result.DISCONNECT_IDLE_ON_MAX_CONN
    ):
        raise ImproperlyConfigured(
            f"RAIN_WS['MAX_CONNECTIONS'] ({result.MAX_CONNECTIONS}) is below "
            f"DISCONNECT_IDLE_ON_MAX_CONN ({result.DISCONNECT_IDLE_ON_MAX_CONN}): the idle "
            "reaper would never run. Raise MAX_CONNECTIONS or lower the threshold."
        )
    if result.MAX_UNREAD_BYTES < result.MAX_PAYLOAD:
        raise ImproperlyConfigured(
            f"RAIN_WS['MAX_UNREAD_BYTES'] ({result.MAX_UNREAD_BYTES}) must be at least "
            f"MAX_PAYLOAD ({result.MAX_PAYLOAD}), or one large message would close the connection."
        )
    if result.MAX_QUEUED_BYTES < result.MAX_PAYLOAD:
        raise ImproperlyConfigured(
            f"RAIN_WS['MAX_QUEUED_BYTES'] ({result.MAX_QUEUED_BYTES}) must be at least "
            f"MAX_PAYLOAD ({result.MAX_PAYLOAD}), or one large event would close the connection."
        )
    return result


@lru_cache(maxsize=1)
def get_settings() -> RainSettings:
    """The validated settings, read once."""
    return _validate(getattr(django_settings, "RAIN_WS", {}))


@receiver(setting_changed)
def _reset(setting: str, **kwargs: object) -> None:
    # override_settings(RAIN_WS=...) in tests takes effect at once.
    if setting == "RAIN_WS":
        get_settings.cache_clear()
