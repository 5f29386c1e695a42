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


_SECONDS = ("PING_INTERVAL", "PING_TIMEOUT", "CONNECT_TIMEOUT")


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
    for name, low, high in (("MAX_PAYLOAD", 1024, SERVER_MAX_MESSAGE), ("MAX_ATTACHMENTS", 0, 10_000)):
        if name in values:
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
    if "REQUIRE_SESSION" in values and not isinstance(values["REQUIRE_SESSION"], bool):
        raise ImproperlyConfigured(
            f"RAIN_WS['REQUIRE_SESSION'] must be True or False, got {values['REQUIRE_SESSION']!r}."
        )
    if values.get("ALLOWED_ORIGINS") is not None:
        origins = values["ALLOWED_ORIGINS"]
        if isinstance(origins, str) or not all(isinstance(o, str) for o in origins):
            raise ImproperlyConfigured(
                "RAIN_WS['ALLOWED_ORIGINS'] must be a list of host patterns, "
                "like ALLOWED_HOSTS."
            )
        values["ALLOWED_ORIGINS"] = tuple(origins)
    return RainSettings(**values)


@lru_cache(maxsize=1)
def get_settings() -> RainSettings:
    """The validated settings, read once."""
    return _validate(getattr(django_settings, "RAIN_WS", {}))


@receiver(setting_changed)
def _reset(setting: str, **kwargs: object) -> None:
    # override_settings(RAIN_WS=...) in tests takes effect at once.
    if setting == "RAIN_WS":
        get_settings.cache_clear()
