"""Validation of settings.RAIN_WS at start-up."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from rain_ws.conf import get_settings


def test_defaults():
    with override_settings(RAIN_WS={}):
        settings = get_settings()
    assert settings.PATH == "/socket.io/"
    assert (settings.PING_INTERVAL, settings.PING_TIMEOUT, settings.CONNECT_TIMEOUT) == (25, 20, 45)
    assert settings.MAX_PAYLOAD == 1_000_000


def test_fractional_seconds_are_allowed():
    with override_settings(RAIN_WS={"PING_INTERVAL": 0.3, "PING_TIMEOUT": 0.2}):
        assert get_settings().PING_INTERVAL == 0.3


@pytest.mark.parametrize(
    "value, message",
    [
        ({"PING_INTERVL": 3}, "unknown key(s) PING_INTERVL"),
        ({"PING_INTERVAL": 0}, "PING_INTERVAL'] must be a positive number"),
        ({"PING_TIMEOUT": "20"}, "PING_TIMEOUT'] must be a positive number"),
        ({"CONNECT_TIMEOUT": True}, "CONNECT_TIMEOUT'] must be a positive number"),
        ({"MAX_PAYLOAD": 2_000_000}, "MAX_PAYLOAD'] must be an integer from 1024 to 1048576"),
        ({"MAX_ATTACHMENTS": -1}, "MAX_ATTACHMENTS'] must be an integer"),
        ({"PATH": "socket.io"}, "must start and end with '/'"),
        ({"ALLOWED_ORIGINS": "https://example.com"}, "must be a list of origins, like CSRF_TRUSTED_ORIGINS"),
        # Host patterns, the format before origins: the message shows the fix.
        ({"ALLOWED_ORIGINS": ["example.com"]}, "write 'https://example.com' for 'example.com'"),
        ({"ALLOWED_ORIGINS": [".example.com"]}, "write 'https://*.example.com' for '.example.com'"),
        ({"ALLOWED_ORIGINS": ["*"]}, "'*' (any origin) is no longer accepted"),
    ],
)
def test_invalid_values_are_refused_with_a_clear_message(value, message):
    with override_settings(RAIN_WS=value):
        with pytest.raises(ImproperlyConfigured) as raised:
            get_settings()
    assert message in str(raised.value)


def test_allowed_origins_take_origins_like_csrf_trusted_origins():
    origins = ["https://example.com", "http://localhost:8000", "https://*.example.net"]
    with override_settings(RAIN_WS={"ALLOWED_ORIGINS": origins}):
        assert get_settings().ALLOWED_ORIGINS == tuple(origins)


def test_not_a_dict():
    with override_settings(RAIN_WS=["PATH"]):
        with pytest.raises(ImproperlyConfigured, match="must be a dict"):
            get_settings()
