"""The session-refresh view and the {% rain_ws_client %} tag."""

import json

import pytest
from django.contrib.sessions.models import Session
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template
from django.test import Client, RequestFactory
from django.contrib.sessions.middleware import SessionMiddleware

REFRESH = "/rain_ws/session/refresh/"


def client_with_session() -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    session = client.session
    session["seen"] = True
    session.save()
    client.cookies["sessionid"] = session.session_key
    return client, session.session_key


def csrf(client: Client) -> dict[str, str]:
    client.cookies["csrftoken"] = "a" * 32
    return {"HTTP_X_CSRFTOKEN": "a" * 32}


def test_refresh_extends_a_live_session():
    client, key = client_with_session()
    before = Session.objects.get(session_key=key).expire_date
    response = client.post(REFRESH, **csrf(client))
    assert response.status_code == 204
    assert response.cookies["sessionid"].value == key
    assert int(response.cookies["sessionid"]["max-age"]) > 0
    assert Session.objects.get(session_key=key).expire_date >= before


def test_refresh_without_session_is_401():
    client = Client(enforce_csrf_checks=True)
    response = client.post(REFRESH, **csrf(client))
    assert response.status_code == 401
    assert json.loads(response.content)["error"] == "session_expired"


def test_refresh_of_a_deleted_session_is_401_and_creates_nothing():
    client, key = client_with_session()
    Session.objects.filter(session_key=key).delete()
    response = client.post(REFRESH, **csrf(client))
    assert response.status_code == 401
    assert not Session.objects.filter(session_key=key).exists()


def test_refresh_needs_csrf_and_post():
    client, _ = client_with_session()
    assert client.post(REFRESH).status_code == 403
    assert client.get(REFRESH).status_code == 405


def render_tag(request) -> str:
    return Template("{% load rain_ws %}{% rain_ws_client %}").render(Context({"request": request}))


def test_tag_renders_config_and_script_and_gives_the_visitor_a_session():
    request = RequestFactory().get("/")
    SessionMiddleware(lambda r: None).process_request(request)
    html = render_tag(request)
    assert '<script id="rain-ws-config" type="application/json">' in html
    assert '<script src="/static/rain_ws/rain.js"></script>' in html
    config = json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    assert config["path"] == "/socket.io/"
    assert config["refreshUrl"] == REFRESH
    assert config["cookieAge"] == 1209600
    assert config["csrfHeader"] == "X-CSRFTOKEN"
    assert request.session.session_key is not None
    assert Session.objects.filter(session_key=request.session.session_key).exists()


def test_tag_without_request_says_what_to_configure():
    with pytest.raises(ImproperlyConfigured, match="context_processors.request"):
        Template("{% load rain_ws %}{% rain_ws_client %}").render(Context({}))
