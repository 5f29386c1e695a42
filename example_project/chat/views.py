"""The chat page: the chat itself, and how to reach its channel from other clients."""

import secrets

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rain_ws.conf import get_settings
from rain_ws.registry import registry
from rain_ws.routing import channel_path

#: The namespace of ``chat/websockets.py``: component, version, channel.
CHAT_CHANNEL = "/chat/1.0/chat"

#: The session key of a visitor's guest name, read by the channel at CONNECT.
NAME_KEY = "chat_name"

#: Rooms the page offers; any other name can be joined too.
ROOMS = ["lobby", "random", "help"]


def index(request: HttpRequest) -> HttpResponse:
    """
    The chat. A visitor needs no account: the page gives the browser a
    session (``{% rain_ws_client %}`` would too), and the session a guest
    name that the channel reads when the socket connects.
    """
    if NAME_KEY not in request.session:
        request.session[NAME_KEY] = f"Guest {secrets.randbelow(9000) + 1000}"
    name = request.user.get_username() if request.user.is_authenticated else request.session[NAME_KEY]
    server = f"{request.scheme}://{request.get_host()}"
    ws_server = server.replace("http", "ws", 1)
    channels = [
        {"name": channel, "route": f"{ws_server}{channel_path(channel)}" if channel != "/" else None}
        for channel in sorted(registry.channels)
    ]
    return render(
        request,
        "chat/index.html",
        {
            "name": name,
            "rooms": ROOMS,
            "server": server,
            "endpoint": f"{ws_server}{get_settings().PATH}?EIO=4&transport=websocket",
            "chat_channel": CHAT_CHANNEL,
            "chat_route": f"{ws_server}{channel_path(CHAT_CHANNEL)}?EIO=4&transport=websocket",
            "channels": channels,
        },
    )
