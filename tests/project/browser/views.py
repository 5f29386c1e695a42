"""Pages the browser tests load, and the views that change their session."""

from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

#: Installed by npm for the tests, not part of the repository.
JQUERY = Path(__file__).resolve().parents[2] / "js" / "node_modules" / "jquery" / "dist" / "jquery.min.js"


def page(request: HttpRequest) -> HttpResponse:
    """rain.js through {% rain_ws_client %}: its configuration and a session."""
    return render(request, "browser/page.html")


def chat(request: HttpRequest) -> HttpResponse:
    """A component whose controller is the RAIN documentation's example."""
    return render(request, "browser/chat.html")


def bare(request: HttpRequest) -> HttpResponse:
    """rain.js without {% rain_ws_client %}: no configuration and no session."""
    return render(request, "browser/bare.html")


def jquery(request: HttpRequest) -> HttpResponse:
    if not JQUERY.is_file():
        raise Http404("jQuery is not installed: run npm install in tests/js")
    return HttpResponse(JQUERY.read_bytes(), content_type="text/javascript")


@csrf_exempt
@require_POST
def flush(request: HttpRequest) -> HttpResponse:
    """End the session, as a logout in another tab does."""
    request.session.flush()
    return HttpResponse(status=204)


def failing_refresh(request: HttpRequest) -> JsonResponse:
    """A session-refresh view whose session store is down."""
    return JsonResponse({"error": "session store unavailable"}, status=500)
