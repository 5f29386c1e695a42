"""HTTP middleware of rain_ws."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .runtime import end_session_everywhere

__all__ = ["SessionEndMiddleware"]


class SessionEndMiddleware:
    """
    End the sockets of a session that a view flushed or replaced.

    A view that calls ``request.session.flush()`` or ``cycle_key()`` (Django's
    ``login()`` does) leaves sockets on the old session key, which can no
    longer read or save it: with this middleware they receive
    ``session_expired`` and are disconnected at once, in every process, with
    any session backend. (A logout needs no middleware: rain_ws listens to
    ``user_logged_out``.) Put it after ``SessionMiddleware``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if key and session is not None and session.accessed and session.session_key != key:
            end_session_everywhere(key)
        return response
