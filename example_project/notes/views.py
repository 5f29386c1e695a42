"""The notes page: the notes the socket saved in the session, rendered by Django."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rain_ws.routing import channel_path

#: The namespace of ``notes/websockets.py``: component, version, channel.
NOTES_CHANNEL = "/notes/1.0/notes"


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """
    List the session's notes. The page reads the same session the socket
    writes, so reloading it shows what was saved over the socket.
    """
    server = f"{request.scheme}://{request.get_host()}"
    return render(
        request,
        "notes/index.html",
        {
            "notes": request.session.get("notes", []),
            "notes_channel": NOTES_CHANNEL,
            "notes_route": f"{server.replace('http', 'ws', 1)}{channel_path(NOTES_CHANNEL)}",
        },
    )
