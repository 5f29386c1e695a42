"""
Cross-origin long-polling, in process through Django's AsyncClient: allowed
only for origins the settings name, with CORS headers that name the origin
(never ``*``) and allow credentials; preflights answered; other origins 403.
"""

import json

from django.test import AsyncClient, override_settings

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
TRUSTED = "https://app.example"


@override_settings(CSRF_TRUSTED_ORIGINS=[TRUSTED])
async def test_a_trusted_origin_gets_cors_headers_with_credentials():
    response = await AsyncClient().get(HANDSHAKE, headers={"Origin": TRUSTED})
    assert response.status_code == 200 and response.content.startswith(b"0{")
    assert response["Access-Control-Allow-Origin"] == TRUSTED
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert response["Vary"] == "Origin"


@override_settings(CSRF_TRUSTED_ORIGINS=[TRUSTED])
async def test_a_preflight_from_a_trusted_origin_is_answered():
    response = await AsyncClient().options(
        HANDSHAKE, headers={"Origin": TRUSTED, "Access-Control-Request-Headers": "content-type, x-token"}
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == TRUSTED
    assert response["Access-Control-Allow-Methods"] == "GET, POST"
    assert response["Access-Control-Allow-Headers"] == "content-type, x-token"


async def test_an_untrusted_origin_is_refused_without_cors_headers():
    response = await AsyncClient().get(HANDSHAKE, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert json.loads(response.content) == {"code": 4, "message": "Forbidden"}
    assert not response.has_header("Access-Control-Allow-Origin")


async def test_the_own_origin_needs_no_cors_headers():
    response = await AsyncClient().get(HANDSHAKE, headers={"Origin": "http://testserver"})
    assert response.status_code == 200
    assert not response.has_header("Access-Control-Allow-Origin")
