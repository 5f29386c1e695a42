"""
rain_ws's Django system checks, run by ``manage.py check`` (and before
``runserver``, ``migrate`` and the other commands that run checks).

Every problem is reported at once, each with an id (``rain_ws.E001``,
``rain_ws.W001``…) and a hint saying what to do; docs/checks.rst lists them.
Errors stop ``runserver``; warnings can be silenced with
``SILENCED_SYSTEM_CHECKS``.

- ``E001``–``E004``: ``settings.RAIN_WS`` (see :mod:`rain_ws.conf`);
- ``E010``–``E016``: the components' websocket modules (see
  :mod:`rain_ws.registry`);
- ``E020``, ``E021``: sessions, when sockets require one;
- ``W001``–``W005``: hosts, the ASGI set-up and the channel layer.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from . import registry as registry_module
from .conf import settings_problems

__all__ = [
    "check_allowed_hosts",
    "check_asgi_setup",
    "check_channel_layer",
    "check_handlers",
    "check_rain_ws_settings",
    "check_sessions",
]

#: ``manage.py check --tag rain_ws`` runs rain_ws's checks only.
TAG = "rain_ws"


@register(Tags.security, TAG)
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


@register(TAG)
def check_rain_ws_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001–E004: every problem of ``settings.RAIN_WS``, not just the first."""
    return [Error(problem.message, hint=problem.hint, id=problem.id) for problem in settings_problems()]


@register(TAG)
def check_handlers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """
    E010–E016: what discovery found wrong in the apps' websocket modules
    (only those of ``app_configs`` when ``manage.py check <app>`` names some).
    """
    labels = None if app_configs is None else {app_config.label for app_config in app_configs}
    return [
        problem.error
        for problem in registry_module.registry.problems
        if labels is None or problem.app_label in labels
    ]


def _project_package() -> str:
    """The project's package, guessed from ROOT_URLCONF, for the hints."""
    root = getattr(settings, "ROOT_URLCONF", None)
    if isinstance(root, str) and "." in root:
        return root.rsplit(".", 1)[0]
    return "mysite"


@register(TAG)
def check_asgi_setup(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W002 (ASGI_APPLICATION), W003 (daphne), W004 (channels)."""
    messages: list[CheckMessage] = []
    asgi = f"{_project_package()}.asgi.application"
    if not getattr(settings, "ASGI_APPLICATION", None):
        messages.append(
            Warning(
                "ASGI_APPLICATION is not set: `manage.py runserver` (daphne's) refuses to start, and "
                "Channels' tools cannot find the application that serves WebSockets.",
                hint=(
                    f"Set ASGI_APPLICATION = {asgi!r}: the ProtocolTypeRouter in asgi.py whose "
                    '"websocket" entry is rain_ws.routing.websocket_application().'
                ),
                id="rain_ws.W002",
            )
        )
    if not apps.is_installed("daphne"):
        messages.append(
            Warning(
                "'daphne' is not in INSTALLED_APPS, so `manage.py runserver` serves WSGI, which has "
                "no WebSockets: every Socket.IO handshake then fails (HTTP 400 from rain_ws.urls, or 404).",
                hint=(
                    "Put 'daphne' first in INSTALLED_APPS (before django.contrib.staticfiles) and set "
                    "ASGI_APPLICATION. If you never use runserver (you run uvicorn or daphne "
                    "yourself), add 'rain_ws.W003' to SILENCED_SYSTEM_CHECKS."
                ),
                id="rain_ws.W003",
            )
        )
    if not apps.is_installed("channels"):
        messages.append(
            Warning(
                "'channels' is not in INSTALLED_APPS: rain_ws runs on Django Channels, and its "
                "documented set-up installs Channels' app (which provides `manage.py runworker`).",
                hint="Add 'channels' to INSTALLED_APPS, before 'rain_ws'.",
                id="rain_ws.W004",
            )
        )
    return messages


def _sessions_required() -> bool:
    """
    Whether some handler refuses a CONNECT without a session (or from an
    anonymous user); RAIN_WS['REQUIRE_SESSION'] while there is no handler yet.
    Read from the raw setting, so that this is checked even when another
    value of RAIN_WS is invalid.
    """
    raw = getattr(settings, "RAIN_WS", {})
    default = raw.get("REQUIRE_SESSION", True) if isinstance(raw, dict) else True
    if not isinstance(default, bool):
        default = True
    handlers = [h for channel in registry_module.registry.channels.values() for h in channel.handlers]
    if not handlers:
        return default
    return any(
        handler.login_required or (default if handler.require_session is None else handler.require_session)
        for handler in handlers
    )


def _has_session_middleware() -> bool:
    for path in settings.MIDDLEWARE:
        try:
            middleware = import_string(path)
        except ImportError:
            continue
        if isinstance(middleware, type) and issubclass(middleware, SessionMiddleware):
            return True
    return False


def _engine_uses_contrib_sessions_table() -> bool:
    """Whether SESSION_ENGINE stores sessions in django.contrib.sessions' own model."""
    from django.contrib.sessions.backends.db import SessionStore as DatabaseStore

    try:
        store = import_module(settings.SESSION_ENGINE).SessionStore
    except (ImportError, AttributeError):
        return False
    return (
        isinstance(store, type)
        and issubclass(store, DatabaseStore)
        and store.get_model_class.__func__ is DatabaseStore.get_model_class.__func__
    )


@register(TAG)
def check_sessions(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E020 (SessionMiddleware), E021 (django.contrib.sessions), when sockets require a session."""
    if not _sessions_required():
        return []
    messages: list[CheckMessage] = []
    if not _has_session_middleware():
        messages.append(
            Error(
                "SessionMiddleware is not in MIDDLEWARE, but sockets require a session "
                "(RAIN_WS['REQUIRE_SESSION'], or a handler module's require_session or "
                "login_required): pages never set the session cookie, so every CONNECT is "
                "refused with 'session required', and {% rain_ws_client %} fails.",
                hint=(
                    "Add 'django.contrib.sessions.middleware.SessionMiddleware' to MIDDLEWARE "
                    "(before CsrfViewMiddleware and AuthenticationMiddleware), or set "
                    "RAIN_WS['REQUIRE_SESSION'] = False if your sockets need no session."
                ),
                id="rain_ws.E020",
            )
        )
    if not apps.is_installed("django.contrib.sessions") and _engine_uses_contrib_sessions_table():
        messages.append(
            Error(
                f"'django.contrib.sessions' is not in INSTALLED_APPS, but SESSION_ENGINE "
                f"({settings.SESSION_ENGINE!r}) keeps sessions in its table: the table is never "
                "created, no session can be saved or read, and every CONNECT is refused with "
                "'session required'.",
                hint="Add 'django.contrib.sessions' to INSTALLED_APPS and run `manage.py migrate`.",
                id="rain_ws.E021",
            )
        )
    return messages


#: Host names that serve only this machine (and Django's test client).
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1", "0.0.0.0", "testserver", ".localhost"}


def _public_hosts() -> list[str]:
    return [
        host
        for host in settings.ALLOWED_HOSTS
        if host.lower() not in _LOCAL_HOSTS and not host.lower().endswith(".localhost")
    ]


@register(TAG)
def check_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """
    W005: no channel layer that spans processes, on what looks like a
    deployment: DEBUG off and ALLOWED_HOSTS naming a host other than this
    machine's.
    """
    from channels.layers import InMemoryChannelLayer

    hosts = _public_hosts()
    if settings.DEBUG or not hosts:
        return []
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    backend = layers.get("default", {}).get("BACKEND") if isinstance(layers, dict) else None
    if backend is None:
        layer = "No channel layer is set (CHANNEL_LAYERS has no 'default')"
    else:
        try:
            backend_class = import_string(backend)
        except ImportError:
            return []  # Channels reports it when the layer is first used
        if not (isinstance(backend_class, type) and issubclass(backend_class, InMemoryChannelLayer)):
            return []
        layer = f"The channel layer is {backend_class.__name__}"
    return [
        Warning(
            f"{layer} while DEBUG is False and ALLOWED_HOSTS names {', '.join(map(repr, hosts))}: "
            "rooms and broadcasts reach only one process. Sockets served by other server "
            "processes miss them, and rain_ws.broadcast() from a management command or a worker "
            "reaches nobody.",
            hint=(
                "With several processes, use channels-redis (the redis extra: "
                "pip install '/path/to/rain_ws[redis]') and set "
                "CHANNEL_LAYERS['default']['BACKEND'] to "
                "'channels_redis.pubsub.RedisPubSubChannelLayer' (see the deployment docs). "
                "If the site really runs one process, add 'rain_ws.W005' to SILENCED_SYSTEM_CHECKS."
            ),
            id="rain_ws.W005",
        )
    ]
