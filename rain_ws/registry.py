"""
Channels and their handlers, discovered from installed apps.

Each installed app (a *component*) may ship a ``websockets`` module, or a
``websockets`` package whose submodules are read in name order (RAIN's
``server/websockets/`` folder). A module declares a handler either with
module-level ``channel`` and ``handle(socket)``, or with the
:func:`rain_ws.channel` decorator on any number of functions. A handler's
public name, the Socket.IO namespace clients connect to, is
``/<component>/<version>/<channel>`` unless the channel starts with ``/``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

from .conf import get_settings

__all__ = ["Channel", "Handler", "channel", "discover", "registry"]

#: A channel is one or more segments of letters, digits, ``-``, ``_``, ``.``
#: and ``~`` joined by ``/``; these are the characters a URL path segment and
#: a Socket.IO namespace both carry without escaping.
_SEGMENTS = r"[A-Za-z0-9_.~-]+(?:/[A-Za-z0-9_.~-]+)*"
_RELATIVE = re.compile(_SEGMENTS)
_ABSOLUTE = re.compile(rf"/(?:{_SEGMENTS})?")
_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]+")

_MARK = "_rain_ws_channel"


@dataclass(frozen=True, slots=True)
class Handler:
    """
    One ``handle(socket)`` function, where it came from, and its session
    options (``None`` for ``require_session`` means ``RAIN_WS["REQUIRE_SESSION"]``).
    """

    function: Callable[..., Any]
    module: str
    is_async: bool
    authorize: Callable[..., Any] | None = None
    authorize_is_async: bool = False
    use_session: bool = False
    require_session: bool | None = None
    login_required: bool = False

    @property
    def name(self) -> str:
        return f"{self.module}.{self.function.__name__}"


@dataclass(slots=True)
class Channel:
    """A public channel: one Socket.IO namespace and the handlers that serve it."""

    name: str
    component: str | None
    version: str | None
    handlers: list[Handler] = field(default_factory=list)

    # When handlers of one channel disagree, the strictest option wins.

    @property
    def use_session(self) -> bool:
        """Reload the session before each event and save it after."""
        return any(handler.use_session for handler in self.handlers)

    @property
    def require_session(self) -> bool:
        """Refuse a CONNECT without a live session."""
        default = get_settings().REQUIRE_SESSION
        return any(
            default if handler.require_session is None else handler.require_session
            for handler in self.handlers
        )

    @property
    def login_required(self) -> bool:
        """Refuse a CONNECT from an anonymous user."""
        return any(handler.login_required for handler in self.handlers)


def channel(
    name: str,
    *,
    use_session: bool | None = None,
    require_session: bool | None = None,
    login_required: bool | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """
    Declare the decorated function as a handler for channel ``name``.

    Use it to declare several handlers in one ``websockets`` module::

        @rain_ws.channel("chat")
        async def chat(socket): ...

        @rain_ws.channel("/status", require_session=False)
        async def status(socket): ...

    The session options default to the module's attributes of the same name.
    """
    if not isinstance(name, str):
        raise TypeError(f"rain_ws.channel() takes the channel name, got {name!r}")
    options = {
        key: value
        for key, value in (
            ("use_session", use_session),
            ("require_session", require_session),
            ("login_required", login_required),
        )
        if value is not None
    }

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        setattr(function, _MARK, (name, options))
        return function

    return mark


class Registry:
    """Every channel of the project, by public name."""

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}

    def get(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def populate(self, app_configs: Iterable[AppConfig]) -> None:
        """Replace the channels with those discovered in ``app_configs``."""
        channels: dict[str, Channel] = {}
        for app_config in app_configs:
            component = getattr(app_config, "rain_component", app_config.label)
            version = getattr(app_config, "rain_version", "1.0")
            for module in _websocket_modules(app_config):
                for channel_name, handler in _handlers(module):
                    public = _public_name(module.__name__, channel_name, component, version)
                    absolute = channel_name.startswith("/")
                    entry = channels.get(public)
                    if entry is None:
                        entry = channels[public] = Channel(
                            public,
                            None if absolute else component,
                            None if absolute else version,
                        )
                    entry.handlers.append(handler)
        self.channels = channels


registry = Registry()


def discover(app_configs: Iterable[AppConfig]) -> None:
    """Fill the project registry; called by ``RainWsConfig.ready()``."""
    registry.populate(app_configs)


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise ImproperlyConfigured(
            f"rain_ws could not import the websocket module {name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _websocket_modules(app_config: AppConfig) -> list[ModuleType]:
    name = f"{app_config.name}.websockets"
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:
        spec = None
    if spec is None:
        return []
    package = _import(name)
    modules = [package]
    if spec.submodule_search_locations:
        submodules = sorted(
            info.name
            for info in pkgutil.iter_modules(spec.submodule_search_locations)
            if not info.name.startswith("_")
        )
        modules.extend(_import(f"{name}.{sub}") for sub in submodules)
    return modules


def _handlers(module: ModuleType) -> list[tuple[str, Handler]]:
    where = module.__name__
    is_package = hasattr(module, "__path__")
    found: list[tuple[str, Callable[..., Any], dict[str, bool]]] = []

    # `from rain_ws import channel` puts the decorator itself in the module.
    declared = getattr(module, "channel", None)
    has_channel = declared is not None and declared is not channel
    handle = getattr(module, "handle", None)
    if has_channel or handle is not None:
        if not has_channel:
            raise ImproperlyConfigured(f"{where} defines handle() but no module-level `channel`.")
        if handle is None:
            raise ImproperlyConfigured(f"{where} defines `channel` but no handle(socket) function.")
        if not callable(handle):
            raise ImproperlyConfigured(f"{where}.handle is not callable.")
        name = declared
        if not isinstance(name, str):
            raise ImproperlyConfigured(f"{where}.channel must be a string, got {name!r}.")
        found.append((name, handle, {}))

    for value in vars(module).values():
        mark = getattr(value, _MARK, None)
        if mark is not None and getattr(value, "__module__", None) == where and value is not handle:
            found.append((mark[0], value, mark[1]))

    if not found and not is_package:
        raise ImproperlyConfigured(
            f"{where} declares no websocket handler: define `channel` and "
            "handle(socket), or decorate handlers with @rain_ws.channel(...). "
            "Name a helper module with a leading underscore to skip it."
        )

    authorize = getattr(module, "authorize", None)
    if authorize is not None and not callable(authorize):
        raise ImproperlyConfigured(f"{where}.authorize is not callable.")
    module_options: dict[str, bool] = {}
    for option in ("use_session", "require_session", "login_required"):
        if hasattr(module, option):
            value = getattr(module, option)
            if not isinstance(value, bool):
                raise ImproperlyConfigured(f"{where}.{option} must be True or False, got {value!r}.")
            module_options[option] = value
    return [
        (
            name,
            Handler(
                function=function,
                module=where,
                is_async=inspect.iscoroutinefunction(function),
                authorize=authorize,
                authorize_is_async=inspect.iscoroutinefunction(authorize),
                **{**module_options, **options},
            ),
        )
        for name, function, options in found
    ]


def _public_name(where: str, name: str, component: str, version: str) -> str:
    if name.startswith("/"):
        if not _ABSOLUTE.fullmatch(name):
            raise ImproperlyConfigured(
                f"{where}: channel {name!r} is not valid: use letters, digits, "
                "'-', '_', '.', '~' and '/' between segments."
            )
        return name
    if not _RELATIVE.fullmatch(name):
        raise ImproperlyConfigured(
            f"{where}: channel {name!r} is not valid: use letters, digits, "
            "'-', '_', '.', '~' and '/' between segments."
        )
    for label, value in (("rain_component", component), ("rain_version", version)):
        if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
            raise ImproperlyConfigured(
                f"{where}: the app's {label} {value!r} is not valid: use letters, "
                "digits, '-', '_', '.' and '~'."
            )
    return f"/{component}/{version}/{name}"
