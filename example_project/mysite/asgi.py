"""
The ASGI application: Django for HTTP, rain_ws for WebSockets.

Django is set up by ``get_asgi_application()`` before rain_ws's routing is
imported, because the routes come from the channels discovered at start-up.

``manage.py runserver`` serves static files by itself, but daphne and
uvicorn started on this module do not: while ``DEBUG`` is on, Django's
``ASGIStaticFilesHandler`` serves them (``rain_ws/rain.js`` included), so the
pages work under every server. In production, serve ``collectstatic``'s
output from the proxy instead.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from rain_ws.routing import websocket_application  # noqa: E402

http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.DEBUG else django_asgi_app

application = ProtocolTypeRouter({"http": http_app, "websocket": websocket_application()})
