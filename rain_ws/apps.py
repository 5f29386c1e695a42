from django.apps import AppConfig, apps


class RainWsConfig(AppConfig):
    """
    Checks ``settings.RAIN_WS``, discovers every component's websocket
    handlers, and connects the receivers that end a session's sockets.
    """

    name = "rain_ws"
    verbose_name = "RAIN websockets"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete

        from . import signals
        from .conf import get_settings
        from .registry import discover

        get_settings()
        discover(apps.get_app_configs())
        if apps.is_installed("django.contrib.auth"):
            user_logged_out.connect(signals.user_logged_out, dispatch_uid="rain_ws.user_logged_out")
        if apps.is_installed("django.contrib.sessions"):
            from django.contrib.sessions.models import Session

            post_delete.connect(signals.session_deleted, sender=Session, dispatch_uid="rain_ws.session_deleted")
