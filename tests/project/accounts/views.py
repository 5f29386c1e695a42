"""
Plain Django views that give a client its session cookie and change the
session over HTTP, the way a page would beside its sockets.

The tests post without a CSRF token, as an API client would.
"""

import json

from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST


@csrf_exempt
@require_POST
def login_view(request: HttpRequest) -> HttpResponse:
    """Log in with the form fields ``username`` and ``password``; Django cycles the session key."""
    user = authenticate(request, username=request.POST.get("username"), password=request.POST.get("password"))
    if user is None:
        return JsonResponse({"error": "invalid credentials"}, status=403)
    login(request, user)
    return JsonResponse({"username": user.get_username()})


@csrf_exempt
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """Log out: Django flushes the session, deleting it from the store."""
    logout(request)
    return JsonResponse({"ok": True})


@csrf_exempt
def session_value(request: HttpRequest, key: str) -> HttpResponse:
    """GET: the session's value for ``key`` (null when unset). POST: set it to the JSON body."""
    if request.method == "POST":
        request.session[key] = json.loads(request.body)
        return JsonResponse({"ok": True})
    if request.method == "GET":
        return JsonResponse(request.session.get(key), safe=False)
    return HttpResponse(status=405)


@require_GET
def visit(request: HttpRequest) -> HttpResponse:
    """
    Count the visit in the session: an empty session is never saved, so
    something must be written for an anonymous visitor to get a cookie.
    """
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"visits": request.session["visits"]})


@csrf_exempt
@require_POST
def flush(request: HttpRequest) -> HttpResponse:
    """Flush the session without logging out, as a "start over" view would."""
    request.session.flush()
    return HttpResponse(status=204)
