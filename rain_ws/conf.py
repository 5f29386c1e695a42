"""
``settings.RAIN_WS``: defaults and validation.

``manage.py check`` (and ``runserver``, ``migrate``…) reports every invalid
value at once, as the system checks ``rain_ws.E001`` to ``rain_ws.E004``
(see :mod:`rain_ws.checks`). :func:`get_settings` returns the validated
values, and raises :class:`~django.core.exceptions.ImproperlyConfigured`,
naming every problem, to code that reads invalid settings at run time, such
as ``websocket_application()`` in ``asgi.py``: a server started without the
checks stops at start-up all the same.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

__all__ = ["RainSettings", "SettingsProblem", "get_settings", "settings_problems"]

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
    DRAIN_BATCH: int = 100
    DRAIN_INTERVAL: float = 1.0
    RECOVERY_WINDOW: float = 0.0
    RECOVERY_MAX_EVENTS: int = 1000
    RECOVERY_MAX_BYTES: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SettingsProblem:
    """One thing wrong with ``settings.RAIN_WS``, as a system check reports it."""

    id: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} {self.hint}"


_SECONDS = ("PING_INTERVAL", "PING_TIMEOUT", "CONNECT_TIMEOUT", "IDLE_TIME", "IDLE_CHECK_INTERVAL", "DRAIN_INTERVAL")
_FLAGS = ("REQUIRE_SESSION", "DISCONNECT_IDLE")
_INTEGERS = (
    ("MAX_PAYLOAD", 1024, SERVER_MAX_MESSAGE),
    ("MAX_ATTACHMENTS", 0, 10_000),
    ("DISCONNECT_IDLE_ON_MAX_CONN", 0, 10**9),
    ("MAX_CONNECTIONS", 1, 10**9),
    ("MAX_UNREAD_BYTES", 1024, 2**40),
    ("MAX_QUEUED_EVENTS", 1, 10**6),
    ("MAX_QUEUED_BYTES", 1024, 2**40),
    ("MAX_AUTH_BYTES", 0, SERVER_MAX_MESSAGE),
    ("DRAIN_BATCH", 1, 10**9),
    ("RECOVERY_MAX_EVENTS", 1, 10**6),
    ("RECOVERY_MAX_BYTES", 1024, 2**40),
)

NOT_A_DICT = "rain_ws.E001"
UNKNOWN_KEY = "rain_ws.E002"
INVALID_VALUE = "rain_ws.E003"
CONTRADICTION = "rain_ws.E004"


def _check_value(name: str, value: Any) -> tuple[Any, SettingsProblem | None]:
    """The value as RainSettings holds it, or the problem with it."""

    def invalid(message: str, hint: str | None = None) -> tuple[Any, SettingsProblem]:
        return None, SettingsProblem(INVALID_VALUE, message, hint)

    if name == "RECOVERY_WINDOW":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400:
            return invalid(
                f"RAIN_WS['RECOVERY_WINDOW'] must be a number of seconds from 0 (no recovery) to 86400, got {value!r}."
            )
        return float(value), None
    if name in _SECONDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            return invalid(f"RAIN_WS[{name!r}] must be a positive number of seconds, got {value!r}.")
        return float(value), None
    for integer, low, high in _INTEGERS:
        if name == integer:
            if name == "MAX_CONNECTIONS" and value is None:
                return None, None
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                return invalid(f"RAIN_WS[{name!r}] must be an integer from {low} to {high}, got {value!r}.")
            return value, None
    if name == "PATH":
        if not isinstance(value, str) or not value.startswith("/") or not value.endswith("/") or len(value) < 2:
            return invalid(f"RAIN_WS['PATH'] must start and end with '/', like '/socket.io/', got {value!r}.")
        return value, None
    if name in _FLAGS:
        if not isinstance(value, bool):
            return invalid(f"RAIN_WS[{name!r}] must be True or False, got {value!r}.")
        return value, None
    # ALLOWED_ORIGINS
    if value is None:
        return None, None
    iterable = not isinstance(value, (str, bytes)) and hasattr(value, "__iter__")
    origins = tuple(value) if iterable else ()
    if not iterable or not all(isinstance(o, str) for o in origins):
        return invalid(
            "RAIN_WS['ALLOWED_ORIGINS'] must be a list of origins, like CSRF_TRUSTED_ORIGINS.",
            f"For example: [{value!r}]." if isinstance(value, str) else None,
        )
    for origin in origins:
        if "://" not in origin:
            # It took host patterns, like ALLOWED_HOSTS, before: say how to convert them.
            if origin == "*":
                fix = "'*' (any origin) is no longer accepted: list each origin"
            else:
                subdomains = "*" if origin.startswith(".") else ""
                fix = f"write {'https://' + subdomains + origin!r} for {origin!r}"
            return invalid(
                "RAIN_WS['ALLOWED_ORIGINS'] now takes origins with a scheme, like "
                f"CSRF_TRUSTED_ORIGINS, instead of host patterns: {fix}."
            )
    return origins, None


def _validate(raw: object) -> tuple[RainSettings | None, list[SettingsProblem]]:
    """The settings, or None, and every problem found, in the order of the keys."""
    if not isinstance(raw, dict):
        return None, [
            SettingsProblem(
                NOT_A_DICT,
                f"RAIN_WS must be a dict, got {type(raw).__name__}.",
                'Write it as RAIN_WS = {"PATH": "/socket.io/", ...}, or leave it out for the defaults.',
            )
        ]
    problems: list[SettingsProblem] = []
    known = RainSettings.__dataclass_fields__
    unknown = sorted((key for key in raw if key not in known), key=str)
    if unknown:
        guesses = {
            key: match[0]
            for key in unknown
            if isinstance(key, str) and (match := difflib.get_close_matches(key.upper(), known, n=1))
        }
        hint = " ".join(f"Did you mean {guess!r} for {key!r}?" for key, guess in guesses.items())
        problems.append(
            SettingsProblem(
                UNKNOWN_KEY,
                f"RAIN_WS has unknown key(s) {', '.join(map(str, unknown))}; "
                f"valid keys are {', '.join(sorted(known))}.",
                hint or None,
            )
        )
    values: dict[str, Any] = {}
    invalid: set[str] = set()
    for name in known:
        if name in raw:
            value, problem = _check_value(name, raw[name])
            if problem is None:
                values[name] = value
            else:
                invalid.add(name)
                problems.append(problem)
    # Values that are each valid but contradict one another; one that is
    # invalid itself was reported above and is left out of these.
    merged = RainSettings(**values)
    if (
        not invalid & {"DISCONNECT_IDLE", "MAX_CONNECTIONS", "DISCONNECT_IDLE_ON_MAX_CONN"}
        and merged.DISCONNECT_IDLE
        and merged.MAX_CONNECTIONS is not None
        and merged.MAX_CONNECTIONS < merged.DISCONNECT_IDLE_ON_MAX_CONN
    ):
        problems.append(
            SettingsProblem(
                CONTRADICTION,
                f"RAIN_WS['MAX_CONNECTIONS'] ({merged.MAX_CONNECTIONS}) is below "
                f"DISCONNECT_IDLE_ON_MAX_CONN ({merged.DISCONNECT_IDLE_ON_MAX_CONN}): the idle "
                "reaper would never run. Raise MAX_CONNECTIONS or lower the threshold.",
            )
        )
    for name, what in (("MAX_UNREAD_BYTES", "message"), ("MAX_QUEUED_BYTES", "event")):
        if not invalid & {name, "MAX_PAYLOAD"} and getattr(merged, name) < merged.MAX_PAYLOAD:
            problems.append(
                SettingsProblem(
                    CONTRADICTION,
                    f"RAIN_WS[{name!r}] ({getattr(merged, name)}) must be at least "
                    f"MAX_PAYLOAD ({merged.MAX_PAYLOAD}), or one large {what} would close the connection.",
                )
            )
    return (None if problems else merged), problems


def settings_problems() -> list[SettingsProblem]:
    """Everything wrong with ``settings.RAIN_WS``; empty when it is valid."""
    return _validate(getattr(django_settings, "RAIN_WS", {}))[1]


@lru_cache(maxsize=1)
def get_settings() -> RainSettings:
    """
    The validated settings, read once. Raises ImproperlyConfigured, naming
    every problem, when they are invalid.
    """
    result, problems = _validate(getattr(django_settings, "RAIN_WS", {}))
    if result is None:
        if len(problems) == 1:
            raise ImproperlyConfigured(str(problems[0]))
        raise ImproperlyConfigured(
            "settings.RAIN_WS is invalid (`manage.py check` lists this too):\n"
            + "\n".join(f"- {problem}" for problem in problems)
        )
    return result


@receiver(setting_changed)
def _reset(setting: str, **kwargs: object) -> None:
    # override_settings(RAIN_WS=...) in tests takes effect at once.
    if setting == "RAIN_WS":
        get_settings.cache_clear()
