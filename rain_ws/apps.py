"""The app's configuration: at start-up, its system checks, handler discovery and the logout receiver."""

from django.apps import AppConfig, apps


class RainWsConfig(AppConfig):
    """
    Registers rain_ws's system checks, discovers every component's websocket
    handlers, and ends a session's sockets when its user logs out.

    Nothing here raises for an invalid ``RAIN_WS`` or a malformed handler
    module: the system checks report them all at once (``manage.py check``,
    and before ``runserver`` and ``migrate``), and
    :func:`rain_ws.routing.websocket_application` refuses to start with any.
    """

    name = "rain_ws"
    verbose_name = "RAIN websockets"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from . import checks  # noqa: F401 (importing it registers the system checks)
        from . import signals
        from .registry import discover

        discover(apps.get_app_configs())
        if apps.is_installed("django.contrib.auth"):
            user_logged_out.connect(signals.user_logged_out, dispatch_uid="rain_ws.user_logged_out")
