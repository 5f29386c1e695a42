from django.apps import AppConfig, apps


class RainWsConfig(AppConfig):
    """
    Checks ``settings.RAIN_WS``, registers rain_ws's system checks, discovers
    every component's websocket handlers, and ends a session's sockets when
    its user logs out.
    """

    name = "rain_ws"
    verbose_name = "RAIN websockets"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from . import checks  # noqa: F401 (importing it registers the system checks)
        from . import signals
        from .conf import get_settings
        from .registry import discover

        get_settings()
        discover(apps.get_app_configs())
        if apps.is_installed("django.contrib.auth"):
            user_logged_out.connect(signals.user_logged_out, dispatch_uid="rain_ws.user_logged_out")
