"""
The ASGI application: Django for HTTP, rain_ws for WebSockets.

Django is set up by ``get_asgi_application()`` before rain_ws's routing is
imported, because the routes come from the channels discovered at start-up.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from rain_ws.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application()})
