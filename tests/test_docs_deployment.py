"""
docs/deployment.rst, "Behind nginx with TLS": with the page's settings, a
browser's handshake through a TLS-ending proxy (``X-Forwarded-Proto:
https``, the browser's ``Host``) passes the origin check, and fails as the
page says without them; ``USE_X_FORWARDED_HOST`` for a proxy that rewrites
``Host``; and what the page says of uvicorn and daphne reading
``X-Forwarded-Proto`` themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import websockets
from django.test import override_settings
from websockets.exceptions import InvalidStatus

from rain_ws.testing import ConnectionRefused, SocketTestClient
from tests.project.docs_pages import captioned_block

ECHO = "/echo/2.0/echo"  # a channel of the test project that needs no session


def page_settings() -> dict:
    """The settings block of the page, as Django would read it."""
    namespace = {"BASE_DIR": Path("/srv/mysite")}
    exec(captioned_block("deployment.rst", "mysite/settings.py"), namespace)
    return {name: value for name, value in namespace.items() if name.isupper() and name != "BASE_DIR"}


@pytest.fixture
def deployed():
    settings = page_settings()
    assert settings["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    with override_settings(**settings):
        yield


def handshake(**headers: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()]


async def connects(headers) -> bool:
    try:
        async with SocketTestClient(ECHO, headers=headers) as client:
            assert (await client.receive("hello"))[0]["message"] == "Hello Sockets!"
    except ConnectionRefused:
        return False
    return True


async def test_through_the_proxy_the_sites_own_pages_connect(deployed):
    assert await connects(handshake(host="example.com", origin="https://example.com", x_forwarded_proto="https"))


async def test_without_x_forwarded_proto_every_browser_is_refused(deployed):
    assert not await connects(handshake(host="example.com", origin="https://example.com"))


async def test_other_origins_stay_refused(deployed):
    proxied = {"host": "example.com", "x_forwarded_proto": "https"}
    assert not await connects(handshake(origin="http://example.com", **proxied))
    assert not await connects(handshake(origin="https://elsewhere.example", **proxied))
    assert not await connects(handshake(origin="https://example.com:8443", **proxied))


async def test_a_host_not_in_allowed_hosts_is_refused(deployed):
    assert not await connects(handshake(host="evil.example", origin="https://evil.example", x_forwarded_proto="https"))


async def test_use_x_forwarded_host_for_a_proxy_that_rewrites_host(deployed):
    rewritten = handshake(
        host="backend:8000", x_forwarded_host="example.com", origin="https://example.com", x_forwarded_proto="https"
    )
    assert not await connects(rewritten)
    with override_settings(USE_X_FORWARDED_HOST=True):
        assert await connects(rewritten)


async def raw_handshake(server, **headers: str) -> int:
    """The HTTP status of a WebSocket handshake sent straight to the server, as a proxy would."""
    uri = f"{server.ws_url}/socket.io/?EIO=4&transport=websocket"
    try:
        async with websockets.connect(uri, additional_headers=headers, open_timeout=5):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_uvicorn_reads_x_forwarded_proto_from_a_trusted_proxy(uvicorn_server):
    """Without SECURE_PROXY_SSL_HEADER: uvicorn makes the scope's scheme wss itself."""
    origin = f"https://127.0.0.1:{uvicorn_server.port}"
    assert await raw_handshake(uvicorn_server, Origin=origin, **{"X-Forwarded-Proto": "https"}) == 101
    assert await raw_handshake(uvicorn_server, Origin=origin) == 403


async def test_daphne_does_not(daphne_server):
    origin = f"https://127.0.0.1:{daphne_server.port}"
    assert await raw_handshake(daphne_server, Origin=origin, **{"X-Forwarded-Proto": "https"}) == 403
