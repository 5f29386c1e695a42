"""The example site's page: what runs here and how to connect to it."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rain_ws.conf import get_settings
from rain_ws.registry import registry
from rain_ws.routing import channel_path

#: The namespace of ``chat/websockets.py``: component, version, channel.
CHAT_CHANNEL = "/chat/1.0/chat"


def index(request: HttpRequest) -> HttpResponse:
    """
    Describe the running channels and give client snippets with this
    server's own address, so they work when pasted as they are.
    """
    # Channels refuse sockets without a session (RAIN_WS["REQUIRE_SESSION"]),
    # and a socket cannot create one: the page gives the browser its cookie.
    if request.session.session_key is None:
        request.session.save()
    server = f"{request.scheme}://{request.get_host()}"
    ws_server = server.replace("http", "ws", 1)
    endpoint = get_settings().PATH
    channels = [
        {"name": name, "route": f"{ws_server}{channel_path(name)}" if name != "/" else None}
        for name in sorted(registry.channels)
    ]
    return render(
        request,
        "chat/index.html",
        {
            "server": server,
            "endpoint": f"{ws_server}{endpoint}?EIO=4&transport=websocket",
            "chat_channel": CHAT_CHANNEL,
            "chat_route": f"{ws_server}{channel_path(CHAT_CHANNEL)}?EIO=4&transport=websocket",
            "channels": channels,
        },
    )
