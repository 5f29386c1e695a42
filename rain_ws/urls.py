"""
URLs of rain_ws; include them once at the site root::

    path("", include("rain_ws.urls")),
"""

import re

from django.core.exceptions import ImproperlyConfigured
from django.urls import path, re_path

from . import views
from .conf import RainSettings, get_settings

app_name = "rain_ws"


def _socket_io_path() -> str:
    try:
        return get_settings().PATH
    except ImproperlyConfigured:
        # An invalid RAIN_WS is reported by `manage.py check` (rain_ws.E001-E004),
        # which loads this URLconf for checks of its own: load it all the same.
        return RainSettings().PATH


urlpatterns = [
    path("rain_ws/session/refresh/", views.session_refresh, name="session_refresh"),
    re_path(rf"^{re.escape(_socket_io_path().lstrip('/'))}", views.socket_io, name="socket_io"),
]
