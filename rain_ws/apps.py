from django.apps import AppConfig, apps


class RainWsConfig(AppConfig):
    """Checks ``settings.RAIN_WS`` and discovers every component's websocket handlers."""

    name = "rain_ws"
    verbose_name = "RAIN websockets"

    def ready(self) -> None:
        from .conf import get_settings
        from .registry import discover

        get_settings()
        discover(apps.get_app_configs())
