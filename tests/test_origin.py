"""
The handshake's origin check: Django's CSRF origin rules, in process and on
a real server, and the system check for ``ALLOWED_HOSTS = ["*"]``.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.core.checks import Tags, run_checks
from django.test import override_settings
from websockets.exceptions import InvalidStatus

from rain_ws.routing import websocket_application
from rain_ws.security import origin_allowed
from tests.support.servers import Server
from tests.support.wire import log_line, open_connection, wire_client

HOST = "example.com:8000"
PROXY = ("HTTP_X_FORWARDED_PROTO", "https")


def handshake(origin: str | None, host: str = HOST, scheme: str = "ws", **headers: str) -> dict[str, Any]:
    """The ASGI scope of a WebSocket handshake to ``host`` from a page at ``origin``."""
    pairs = [(b"host", host.encode())]
    if origin is not None:
        pairs.append((b"origin", origin.encode()))
    pairs += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "websocket", "scheme": scheme, "path": "/socket.io/", "headers": pairs}


# (origin, handshake options, settings, allowed)
RULES = {
    "same origin": ("http://example.com:8000", {}, {}, True),
    "same host, other port": ("http://example.com:9999", {}, {}, False),
    "same host, no port": ("http://example.com", {}, {}, False),
    "same host and port, other scheme": ("https://example.com:8000", {}, {}, False),
    "wss is https": ("https://example.com", {"host": "example.com", "scheme": "wss"}, {}, True),
    "wss refuses http": ("http://example.com", {"host": "example.com", "scheme": "wss"}, {}, False),
    "no origin": (None, {}, {}, True),
    "origin null": ("null", {}, {}, False),
    "empty origin": ("", {}, {}, False),
    "foreign origin": ("http://evil.example", {}, {}, False),
    # A host outside ALLOWED_HOSTS has no own origin to trust (DNS rebinding).
    "own origin, host not allowed": ("http://evil.example", {"host": "evil.example"}, {}, False),
    "ALLOWED_HOSTS * and a foreign origin": ("http://evil.example", {}, {"ALLOWED_HOSTS": ["*"]}, False),
    "ALLOWED_HOSTS * and the same origin": ("http://example.com:8000", {}, {"ALLOWED_HOSTS": ["*"]}, True),
    "ALLOWED_HOSTS subdomain pattern": (
        "http://www.example.com", {"host": "www.example.com"}, {"ALLOWED_HOSTS": [".example.com"]}, True
    ),
    "DEBUG, no ALLOWED_HOSTS, localhost": (
        "http://localhost:8000", {"host": "localhost:8000"}, {"DEBUG": True, "ALLOWED_HOSTS": []}, True
    ),
    "DEBUG, no ALLOWED_HOSTS, other host": ("http://example.com:8000", {}, {"DEBUG": True, "ALLOWED_HOSTS": []}, False),
    "X-Forwarded-Proto https with SECURE_PROXY_SSL_HEADER": (
        "https://example.com", {"host": "example.com", "x_forwarded_proto": "https"},
        {"SECURE_PROXY_SSL_HEADER": PROXY}, True,
    ),
    "X-Forwarded-Proto http with SECURE_PROXY_SSL_HEADER": (
        "https://example.com", {"host": "example.com", "x_forwarded_proto": "http"},
        {"SECURE_PROXY_SSL_HEADER": PROXY}, False,
    ),
    "X-Forwarded-Proto without SECURE_PROXY_SSL_HEADER": (
        "https://example.com", {"host": "example.com", "x_forwarded_proto": "https"}, {}, False
    ),
    "X-Forwarded-Host with USE_X_FORWARDED_HOST": (
        "http://example.com", {"host": "backend:8001", "x_forwarded_host": "example.com"},
        {"USE_X_FORWARDED_HOST": True}, True,
    ),
    "X-Forwarded-Host without USE_X_FORWARDED_HOST": (
        "http://example.com", {"host": "backend:8001", "x_forwarded_host": "example.com"}, {}, False
    ),
    "CSRF_TRUSTED_ORIGINS exact": ("https://app.example.net", {}, {"CSRF_TRUSTED_ORIGINS": ["https://app.example.net"]}, True),
    "CSRF_TRUSTED_ORIGINS exact, other scheme": (
        "http://app.example.net", {}, {"CSRF_TRUSTED_ORIGINS": ["https://app.example.net"]}, False
    ),
    "CSRF_TRUSTED_ORIGINS exact, other port": (
        "https://app.example.net:8443", {}, {"CSRF_TRUSTED_ORIGINS": ["https://app.example.net"]}, False
    ),
    "CSRF_TRUSTED_ORIGINS wildcard, subdomain": (
        "https://a.b.example.net", {}, {"CSRF_TRUSTED_ORIGINS": ["https://*.example.net"]}, True
    ),
    "CSRF_TRUSTED_ORIGINS wildcard, the domain itself": (
        "https://example.net", {}, {"CSRF_TRUSTED_ORIGINS": ["https://*.example.net"]}, True
    ),
    "CSRF_TRUSTED_ORIGINS wildcard, other scheme": (
        "http://a.example.net", {}, {"CSRF_TRUSTED_ORIGINS": ["https://*.example.net"]}, False
    ),
    "CSRF_TRUSTED_ORIGINS wildcard, lookalike domain": (
        "https://evilexample.net", {}, {"CSRF_TRUSTED_ORIGINS": ["https://*.example.net"]}, False
    ),
    "ALLOWED_ORIGINS exact": ("https://app.example.org", {}, {"RAIN_WS": {"ALLOWED_ORIGINS": ["https://app.example.org"]}}, True),
    "ALLOWED_ORIGINS wildcard": (
        "https://a.example.org", {}, {"RAIN_WS": {"ALLOWED_ORIGINS": ["https://*.example.org"]}}, True
    ),
    "ALLOWED_ORIGINS, unlisted origin": (
        "https://example.com", {}, {"RAIN_WS": {"ALLOWED_ORIGINS": ["https://app.example.org"]}}, False
    ),
}


@pytest.mark.parametrize("origin, options, overrides, allowed", RULES.values(), ids=RULES.keys())
def test_origin_rules(origin: str | None, options: dict[str, str], overrides: dict[str, Any], allowed: bool) -> None:
    with override_settings(**{"ALLOWED_HOSTS": ["example.com"], **overrides}):
        assert origin_allowed(handshake(origin, **options)) is allowed


async def connect(headers: list[tuple[bytes, bytes]]) -> bool:
    communicator = WebsocketCommunicator(websocket_application(), "/socket.io/?EIO=4&transport=websocket", headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


async def test_refusal_is_logged_with_the_origin(caplog: pytest.LogCaptureFixture) -> None:
    assert not await connect([(b"host", b"testserver"), (b"origin", b"http://testserver:9999")])
    assert "refused a WebSocket from foreign origin 'http://testserver:9999'" in caplog.text
    assert await connect([(b"host", b"testserver"), (b"origin", b"http://testserver")])


async def test_other_port_and_scheme_are_refused_by_a_real_server(daphne_server: Server) -> None:
    url = f"{daphne_server.ws_url}/socket.io/?EIO=4&transport=websocket"
    for origin in (f"http://127.0.0.1:{daphne_server.port + 1}", f"https://127.0.0.1:{daphne_server.port}"):
        with pytest.raises(InvalidStatus) as refused:
            async with open_connection(url, origin=origin):
                pass
        assert refused.value.response.status_code == 403
        assert await log_line(daphne_server, "WARNING", f"foreign origin {origin!r}")


async def test_same_origin_is_accepted_by_a_real_server(daphne_server: Server) -> None:
    async with wire_client(daphne_server.ws_url, origin=daphne_server.url) as client:
        await client.connect_namespace("/echo/2.0/echo")


@pytest.mark.parametrize("hosts, warned", [(["*"], True), (["example.com", "*"], True), (["example.com"], False)])
def test_wildcard_allowed_hosts_warns(hosts: list[str], warned: bool) -> None:
    with override_settings(ALLOWED_HOSTS=hosts):
        ids = [message.id for message in run_checks(tags=[Tags.security])]
    assert ("rain_ws.W001" in ids) is warned
