"""
Channels and their handlers, discovered from installed apps.

Each installed app (a *component*) may ship a ``websockets`` module, or a
``websockets`` package whose submodules are read in name order (RAIN's
``server/websockets/`` folder). A module declares a handler either with
module-level ``channel`` and ``handle(socket)``, or with the
:func:`rain_ws.channel` decorator on any number of functions. A handler's
public name, the Socket.IO namespace clients connect to, is
``/<component>/<version>/<channel>`` unless the channel starts with ``/``.

What is wrong with a module (a handler that cannot be called with the
socket, a channel that is not a string, two apps on one component…) is kept
in :attr:`Registry.problems` while discovery carries on, so that
``manage.py check`` lists every problem at once (``rain_ws.E010`` to
``rain_ws.E016``, see :mod:`rain_ws.checks`), and
:func:`rain_ws.routing.websocket_application` refuses to start with any.
A module that cannot be imported stops start-up with its traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

from django.apps import AppConfig
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured

from .conf import get_settings

__all__ = ["Channel", "Handler", "Problem", "Registry", "channel", "discover", "registry"]

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
    recover: bool = True

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

    @property
    def recover(self) -> bool:
        """Keep what is sent to its sockets for recovery (with ``RECOVERY_WINDOW`` set)."""
        return all(handler.recover for handler in self.handlers)


def channel(
    name: str,
    *,
    use_session: bool | None = None,
    require_session: bool | None = None,
    login_required: bool | None = None,
    recover: bool | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """
    Declare the decorated function as a handler for channel ``name``.

    Use it to declare several handlers in one ``websockets`` module::

        @rain_ws.channel("chat")
        async def chat(socket): ...

        @rain_ws.channel("/status", require_session=False)
        async def status(socket): ...

    The options default to the module's attributes of the same name.
    """
    if not isinstance(name, str):
        raise TypeError(f"rain_ws.channel() takes the channel name, got {name!r}")
    options = {
        key: value
        for key, value in (
            ("use_session", use_session),
            ("require_session", require_session),
            ("login_required", login_required),
            ("recover", recover),
        )
        if value is not None
    }

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        setattr(function, _MARK, (name, options))
        return function

    return mark


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem found in an app's websocket handlers, as a system check error."""

    app_label: str
    error: Error

    def __str__(self) -> str:
        error = self.error
        return f"{error.obj}: {error.msg}" + (f" {error.hint}" if error.hint else "")


#: Check ids of the problems discovery reports; see docs/checks.rst.
INCOMPLETE_MODULE = "rain_ws.E010"
NOT_CALLABLE_AS_HANDLER = "rain_ws.E011"
INVALID_CHANNEL = "rain_ws.E012"
INVALID_COMPONENT = "rain_ws.E013"
INVALID_AUTHORIZE = "rain_ws.E014"
INVALID_OPTION = "rain_ws.E015"
SHARED_COMPONENT = "rain_ws.E016"


class Registry:
    """Every channel of the project, by public name, and the problems found on the way."""

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}
        self.problems: list[Problem] = []

    def get(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def populate(self, app_configs: Iterable[AppConfig], *, strict: bool = True) -> None:
        """
        Replace the channels with those discovered in ``app_configs``.

        With ``strict`` (the default), the first problem raises
        ImproperlyConfigured. Without, discovery skips what is wrong, carries
        on, and keeps every problem in :attr:`problems` for the system checks.
        A module that cannot be imported raises ImproperlyConfigured either way.
        """
        channels: dict[str, Channel] = {}
        problems: list[Problem] = []
        # (component, version) -> {app label: its relative namespaces}
        components: dict[tuple[str, str], dict[str, list[str]]] = {}

        def report(label: str, check_id: str, where: str, message: str, hint: str | None = None) -> None:
            problem = Problem(label, Error(message, hint=hint, obj=where, id=check_id))
            if strict:
                raise ImproperlyConfigured(str(problem))
            if problem not in problems:  # e.g. an invalid rain_component, met at each channel
                problems.append(problem)

        for app_config in app_configs:
            component = getattr(app_config, "rain_component", app_config.label)
            version = getattr(app_config, "rain_version", "1.0")
            app_report = partial(report, app_config.label)
            for module in _websocket_modules(app_config):
                for channel_name, handler in _handlers(module, app_report):
                    public = _public_name(module.__name__, channel_name, component, version, app_report)
                    if public is None:
                        continue
                    absolute = channel_name.startswith("/")
                    if not absolute:
                        owners = components.setdefault((component, version), {})
                        owners.setdefault(app_config.label, []).append(public)
                    entry = channels.get(public)
                    if entry is None:
                        entry = channels[public] = Channel(
                            public,
                            None if absolute else component,
                            None if absolute else version,
                        )
                    entry.handlers.append(handler)
        for (component, version), owners in components.items():
            if len(owners) < 2:
                continue
            labels = list(owners)
            namespaces = [set(names) for names in owners.values()]
            shared = sorted(set.intersection(*namespaces)) if len(labels) == 2 else []
            merged = (
                f" Both serve {', '.join(shared)}: their handlers run together on one namespace, "
                "and a listener of one replaces the other's for the same event."
                if shared
                else ""
            )
            names = ", ".join(repr(label) for label in labels[:-1]) + f" and {labels[-1]!r}"
            rename = next((label for label in reversed(labels) if label != component), labels[-1])
            report(
                labels[-1],
                SHARED_COMPONENT,
                labels[-1],
                f"The apps {names} are the same component {component!r} version {version!r} "
                "(rain_component and rain_version of their AppConfig; the component defaults to the app "
                f"label): their channels share "
                f"the namespaces under /{component}/{version}/.{merged}",
                "Give each app its own rain_component (or rain_version), "
                f"e.g. rain_component = {rename!r} in the {rename!r} app's AppConfig.",
            )
        self.channels = channels
        self.problems = problems


registry = Registry()


def discover(app_configs: Iterable[AppConfig]) -> None:
    """
    Fill the project registry; called by ``RainWsConfig.ready()``. Problems
    are kept for ``manage.py check`` rather than raised.
    """
    registry.populate(app_configs, strict=False)


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


Report = Callable[..., None]


def _call_problem(function: Any, name: str) -> str | None:
    """Why ``function`` cannot be called as ``name(socket)``, or None."""
    if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
        return f"{name}() is a generator function (it has `yield`), so its body would never run."
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return None
    try:
        signature.bind(object())
    except TypeError:
        return f"{name}{signature} cannot be called as {name}(socket): it must take one argument, the socket."
    return None


def _handlers(module: ModuleType, report: Report) -> list[tuple[str, Handler]]:
    where = module.__name__
    is_package = hasattr(module, "__path__")
    found: list[tuple[str, Callable[..., Any], dict[str, bool]]] = []
    declared_any = False

    # `from rain_ws import channel` puts the decorator itself in the module.
    declared = getattr(module, "channel", None)
    has_channel = declared is not None and declared is not channel
    handle = getattr(module, "handle", None)
    if has_channel or handle is not None:
        declared_any = True
        if not has_channel:
            report(
                INCOMPLETE_MODULE,
                where,
                "The module defines handle() but no module-level `channel`.",
                "Add channel = '<name>' to the module, e.g. channel = 'chat' for the namespace "
                "/<component>/<version>/chat.",
            )
        elif handle is None:
            report(
                INCOMPLETE_MODULE,
                where,
                "The module defines `channel` but no handle(socket) function.",
                "Add `async def handle(socket): ...` (or a plain def) to the module.",
            )
        elif not callable(handle):
            report(
                NOT_CALLABLE_AS_HANDLER,
                where,
                f"The module's handle is not callable: it is {type(handle).__name__} {handle!r}.",
                "Define handle as a function: `async def handle(socket): ...`.",
            )
        elif not isinstance(declared, str):
            report(
                INVALID_CHANNEL,
                where,
                f"The module's channel must be a string, got {declared!r}.",
                "Name the channel with a string, e.g. channel = 'chat'.",
            )
        elif (problem := _call_problem(handle, "handle")) is not None:
            report(NOT_CALLABLE_AS_HANDLER, where, problem, "Define it as `async def handle(socket): ...`.")
        else:
            found.append((declared, handle, {}))

    for value in vars(module).values():
        mark = getattr(value, _MARK, None)
        if mark is not None and getattr(value, "__module__", None) == where and value is not handle:
            declared_any = True
            function_name = getattr(value, "__name__", repr(value))
            problem = _call_problem(value, function_name)
            if problem is not None:
                report(
                    NOT_CALLABLE_AS_HANDLER,
                    where,
                    f"@rain_ws.channel({mark[0]!r}): {problem}",
                    f"Define it as `async def {function_name}(socket): ...`.",
                )
                continue
            found.append((mark[0], value, mark[1]))

    if not declared_any and not is_package:
        report(
            INCOMPLETE_MODULE,
            where,
            "The module declares no websocket handler.",
            "Define `channel` and handle(socket), or decorate handlers with @rain_ws.channel(...). "
            "Name a helper module with a leading underscore to skip it.",
        )

    authorize = getattr(module, "authorize", None)
    if authorize is not None:
        if not callable(authorize):
            report(
                INVALID_AUTHORIZE,
                where,
                f"The module's authorize is not callable: it is {type(authorize).__name__} {authorize!r}.",
                "Define it as `async def authorize(socket): return True` (or False), or remove it.",
            )
            return []
        if (problem := _call_problem(authorize, "authorize")) is not None:
            report(
                INVALID_AUTHORIZE,
                where,
                problem,
                "Define it as `async def authorize(socket): ...`, returning True to accept the CONNECT.",
            )
            return []
    module_options: dict[str, bool] = {}
    for option in ("use_session", "require_session", "login_required", "recover"):
        if hasattr(module, option):
            value = getattr(module, option)
            if not isinstance(value, bool):
                report(
                    INVALID_OPTION,
                    where,
                    f"The module's {option} must be True or False, got {value!r}.",
                    f"Write {option} = True or {option} = False.",
                )
                continue
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


_CHANNEL_CHARACTERS = "use letters, digits, '-', '_', '.', '~' and '/' between segments."


def _public_name(where: str, name: str, component: Any, version: Any, report: Report) -> str | None:
    if name.startswith("/"):
        if not _ABSOLUTE.fullmatch(name):
            report(
                INVALID_CHANNEL,
                where,
                f"channel {name!r} is not valid: {_CHANNEL_CHARACTERS}",
                "An absolute channel is '/' or '/name', with no trailing '/'.",
            )
            return None
        return name
    if not _RELATIVE.fullmatch(name):
        report(
            INVALID_CHANNEL,
            where,
            f"channel {name!r} is not valid: {_CHANNEL_CHARACTERS}",
            "For example 'chat' or 'chat/private'.",
        )
        return None
    for label, value in (("rain_component", component), ("rain_version", version)):
        if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
            report(
                INVALID_COMPONENT,
                where,
                f"the app's {label} {value!r} is not valid: use letters, digits, '-', '_', '.' and '~'.",
                f"Set {label} in the app's AppConfig to a string such as "
                + ("'chat'." if label == "rain_component" else "'1.0'."),
            )
            return None
    return f"/{component}/{version}/{name}"
