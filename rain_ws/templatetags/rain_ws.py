"""``{% rain_ws_client %}``: the browser runtime and its configuration."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.middleware.csrf import get_token
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, json_script

from ..conf import get_settings

register = template.Library()


@register.simple_tag(takes_context=True)
def rain_ws_client(context: template.Context) -> str:
    """
    Render the runtime's configuration as a ``json_script`` element and the
    ``<script>`` tag of ``rain_ws/rain.js``.

    The page leaves with a session cookie, since sockets are refused without
    a session and cannot create one: a visitor without a session gets one
    here.
    """
    request = context.get("request")
    if request is None:
        raise ImproperlyConfigured(
            "{% rain_ws_client %} needs the request in the template context: add "
            "'django.template.context_processors.request' to the template "
            "engine's context_processors and render with a request."
        )
    session = getattr(request, "session", None)
    if session is None:
        raise ImproperlyConfigured(
            "{% rain_ws_client %} needs the request's session: add "
            "'django.contrib.sessions.middleware.SessionMiddleware' to MIDDLEWARE."
        )
    try:
        refresh_url = reverse("rain_ws:session_refresh")
    except NoReverseMatch:
        raise ImproperlyConfigured(
            "{% rain_ws_client %} needs rain_ws's URLs: add path(\"\", include(\"rain_ws.urls\")) "
            f"to urlpatterns in your ROOT_URLCONF ({settings.ROOT_URLCONF!r}), the project's "
            "urls.py, with `from django.urls import include, path`."
        ) from None
    if session.session_key is None:
        session.save()
    config: dict[str, Any] = {
        "path": get_settings().PATH,
        "refreshUrl": refresh_url,
        "cookieAge": settings.SESSION_COOKIE_AGE,
        "csrfToken": get_token(request),
        "csrfHeader": settings.CSRF_HEADER_NAME.removeprefix("HTTP_").replace("_", "-"),
        # A readable CSRF cookie is fresher than the rendered token after a
        # login in another tab; None when the token lives in the session.
        "csrfCookieName": None if settings.CSRF_USE_SESSIONS else settings.CSRF_COOKIE_NAME,
    }
    return format_html(
        "{}\n<script src=\"{}\"></script>",
        json_script(config, "rain-ws-config"),
        static("rain_ws/rain.js"),
    )
