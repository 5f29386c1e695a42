"""HTTP views of rain_ws."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

__all__ = ["websocket_only"]


def websocket_only(request: HttpRequest) -> JsonResponse:
    """
    Answer HTTP requests to the Socket.IO path.

    rain_ws serves the WebSocket transport only; a client configured for
    long-polling (the Socket.IO clients' default first step) lands here and
    gets an Engine.IO error object saying what to change, rather than a 404.
    """
    return JsonResponse(
        {
            "code": 0,
            "message": (
                "Transport unknown: this server speaks Socket.IO over the WebSocket "
                'transport only; configure the client with transports: ["websocket"].'
            ),
        },
        status=400,
    )
