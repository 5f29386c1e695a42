"""Sign-up, and the connection page with the server's side of the figures."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme

from rain_ws import metrics as rain_metrics
from rain_ws.conf import get_settings


def signup(request: HttpRequest) -> HttpResponse:
    """
    Create a user and log them in: the example's way to a demo account
    (``manage.py createsuperuser`` works too).
    """
    redirect_to = request.POST.get("next", request.GET.get("next", ""))
    if not url_has_allowed_host_and_scheme(redirect_to, {request.get_host()}, request.is_secure()):
        redirect_to = resolve_url(settings.LOGIN_REDIRECT_URL)
    if request.user.is_authenticated:
        return redirect(redirect_to)
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # Like the login view, login() gives the session a new key; sockets
        # of the old key hear session_expired, and rain.js reconnects them.
        login(request, form.save())
        return redirect(redirect_to)
    return render(request, "registration/signup.html", {"form": form, "next": redirect_to})


def reaper_settings() -> dict[str, object]:
    rain = get_settings()
    return {
        "on": rain.DISCONNECT_IDLE,
        "idle_time": rain.IDLE_TIME,
        "threshold": rain.DISCONNECT_IDLE_ON_MAX_CONN,
        "ping_interval": rain.PING_INTERVAL,
        "ping_window": rain.PING_INTERVAL + rain.PING_TIMEOUT,
    }


def state(request: HttpRequest) -> HttpResponse:
    """
    The page's own connection as rain.js reports it, and this server
    process's counters. The page gives the browser a session, like every
    page with ``{% rain_ws_client %}``.
    """
    channels = ["/chat/1.0/chat"]
    if request.user.is_authenticated:
        channels.append("/notes/1.0/notes")
    return render(
        request,
        "pages/state.html",
        {"channels": channels, "socket_path": get_settings().PATH, "reaper": reaper_settings()},
    )


async def server_state(request: HttpRequest) -> JsonResponse:
    """
    This process's connection counters (rain_ws's metrics, without
    prometheus_client). An async view, so it runs on the server's event
    loop, beside the connections it counts. With several server processes,
    each counts its own.
    """
    counters = rain_metrics.metrics
    return JsonResponse(
        {
            "connections": getattr(counters, "connections", None),
            "reaped": getattr(counters, "reaped", None),
            "refused": getattr(counters, "refused", None),
            "reaper": reaper_settings(),
        }
    )
