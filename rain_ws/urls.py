"""
URLs of rain_ws; include them once at the site root::

    path("", include("rain_ws.urls")),
"""

import re

from django.urls import path, re_path

from . import views
from .conf import get_settings

app_name = "rain_ws"

urlpatterns = [
    path("rain_ws/session/refresh/", views.session_refresh, name="session_refresh"),
    re_path(rf"^{re.escape(get_settings().PATH.lstrip('/'))}", views.websocket_only, name="websocket_only"),
]
