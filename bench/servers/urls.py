"""
rain_ws's URLs at the root, as its documentation says to include them: the
long-polling transport at ``/socket.io/`` (the ``polling`` scenario); the
other scenarios only open WebSockets.
"""

from django.urls import include, path

urlpatterns = [path("", include("rain_ws.urls"))]
