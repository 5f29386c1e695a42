from django.http import HttpRequest, HttpResponse
from django.urls import path


def new_session(request: HttpRequest) -> HttpResponse:
    """Give the load generator a session (it lives in this process's cache with the cache engine)."""
    request.session["notes"] = []
    request.session.save()
    return HttpResponse(request.session.session_key)


urlpatterns = [path("session/", new_session)]
