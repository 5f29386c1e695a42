"""
Tests of the memo component with rain_ws.testing, no server needed.

Its channel ``/memo/1.0/memo`` keeps a list in the session (``use_session =
True``): it emits ``info`` on connect and acks each ``save`` with the new
count. Its channel ``/memo/1.0/private`` has ``login_required = True``.
"""

from importlib import import_module

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User

from rain_ws.testing import ConnectionRefused, SocketTestClient, create_session, login_session

MEMO = "/memo/1.0/memo"
PRIVATE = "/memo/1.0/private"


def stored_session(session_key: str) -> dict:
    """The session's data as the store holds it now."""
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()


async def test_info_on_connect_and_save_acks():
    session_key = await create_session({"memos": ["first"]})
    async with SocketTestClient(MEMO, session=session_key) as client:
        assert await client.receive("info") == [{"count": 1, "user": "AnonymousUser"}]
        # rain_ws acks are error-first: [error, result].
        assert await client.call("save", "second") == [None, {"count": 2}]
    # The listener's change was saved in the session, for the next page load.
    assert (await sync_to_async(stored_session)(session_key))["memos"] == ["first", "second"]


async def test_a_refusing_listener_acks_its_error_and_saves_nothing():
    session_key = await create_session({"kept": True})
    async with SocketTestClient(MEMO, session=session_key) as client:
        assert await client.call("write-then-fail", "kept", False) == [
            {"message": "changed my mind", "code": "refused"},
            None,
        ]
    assert (await sync_to_async(stored_session)(session_key))["kept"] is True


async def test_a_socket_without_a_session_is_refused():
    with pytest.raises(ConnectionRefused) as refused:
        async with SocketTestClient(MEMO):
            pass
    assert refused.value.data == {"message": "session required", "data": {"code": "session_required"}}


async def test_login_required_admits_a_logged_in_user_only():
    anonymous = await create_session()
    with pytest.raises(ConnectionRefused, match="login required"):
        async with SocketTestClient(PRIVATE, session=anonymous):
            pass
    user = await sync_to_async(User.objects.create_user)("grace", password="not-used")
    async with SocketTestClient(PRIVATE, session=await login_session(user)) as client:
        assert await client.receive("welcome") == ["grace"]
