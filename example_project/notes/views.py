"""The notes page: the notes the socket saved in the session, rendered by Django."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rain_ws.routing import channel_path

#: The namespace of ``notes/websockets.py``: component, version, channel.
NOTES_CHANNEL = "/notes/1.0/notes"


def index(request: HttpRequest) -> HttpResponse:
    """
    List the session's notes. The page reads the same session the socket
    writes, so reloading it shows what was saved over the socket.
    """
    # The channel refuses sockets without a session, and a socket cannot
    # create one: the page gives the browser its session cookie.
    if request.session.session_key is None:
        request.session.save()
    server = f"{request.scheme}://{request.get_host()}"
    return render(
        request,
        "notes/index.html",
        {
            "notes": request.session.get("notes", []),
            "server": server,
            "notes_channel": NOTES_CHANNEL,
            "notes_route": f"{server.replace('http', 'ws', 1)}{channel_path(NOTES_CHANNEL)}",
        },
    )
