from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

import rain_ws


def room(request, room):
    return render(request, "chat/room.html", {"room": room})


@require_POST  # and CSRF-protected, as every POST is by CsrfViewMiddleware
def close_room(request, room):
    rain_ws.broadcast("/chat/1.0/chat", "room-closed", {"room": room}, room=room)
    return JsonResponse({"closed": room})
