"""The in-process test client, on the test project's components."""

import asyncio
import logging
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client

from rain_ws.testing import ConnectionRefused, SocketTestClient, create_session, login_session

MEMO = "/memo/1.0/memo"


async def session_data(key: str) -> dict:
    return await sync_to_async(lambda: Session.objects.get(session_key=key).get_decoded())()


async def test_echo_round_trip_without_session():
    async with SocketTestClient("/echo/2.0/echo") as client:
        assert (await client.receive("hello"))[0]["message"] == "Hello Sockets!"
        assert await client.call("echo", 1, b"\x00\x01") == [None, [1, b"\x00\x01"]]
        assert await client.call("fail", "nope") == [{"message": "refused on purpose", "code": "nope"}, None]


async def test_session_required_by_default():
    with pytest.raises(ConnectionRefused) as refused:
        async with SocketTestClient(MEMO):
            pass
    assert refused.value.data == {"message": "session required", "data": {"code": "session_required"}}


async def test_forged_session_cookie_is_no_session():
    with pytest.raises(ConnectionRefused, match="session required"):
        async with SocketTestClient(MEMO, session="forged-session-key-that-does-not-exist"):
            pass


async def test_saved_over_the_socket_and_visible_in_the_store():
    key = await create_session({"memos": ["a"]})
    async with SocketTestClient(MEMO, session=key) as client:
        assert (await client.receive("info"))[0]["count"] == 1
        assert await client.call("save", "b") == [None, {"count": 2}]
    assert (await session_data(key))["memos"] == ["a", "b"]


async def test_change_in_the_store_is_seen_by_the_next_event():
    key = await create_session({"color": "red"})
    async with SocketTestClient(MEMO, session=key) as client:
        assert await client.call("read", "color") == [None, "red"]

        def repaint():
            store = Session.objects.get(session_key=key)
            data = store.get_decoded()
            data["color"] = "blue"
            Session.objects.save(key, data, store.expire_date)

        await sync_to_async(repaint)()
        assert await client.call("read", "color") == [None, "blue"]


async def test_only_the_listeners_keys_are_written():
    key = await create_session({"mine": 1, "theirs": 1})
    async with SocketTestClient(MEMO, session=key) as client:
        await client.receive("info")

        def concurrent_write():
            store = Session.objects.get(session_key=key)
            data = store.get_decoded()
            data["theirs"] = 2
            Session.objects.save(key, data, store.expire_date)

        # The socket loaded the session before this write; its save of "mine"
        # must not put the old "theirs" back.
        await sync_to_async(concurrent_write)()
        assert await client.call("write", "mine", 2) == [None, True]
    assert await session_data(key) == {"mine": 2, "theirs": 2}


async def test_listener_that_raises_saves_nothing():
    key = await create_session({"kept": True})
    async with SocketTestClient(MEMO, session=key) as client:
        assert await client.call("write-then-fail", "kept", False) == [
            {"message": "changed my mind", "code": "refused"},
            None,
        ]
    assert await session_data(key) == {"kept": True}


async def test_unserializable_value_is_an_error_ack_and_nothing_is_saved():
    key = await create_session({"kept": True})
    async with SocketTestClient(MEMO, session=key) as client:
        # A set is not JSON: Django's JSONSerializer cannot store it.
        error, result = await client.call("write-set", "bad")
        assert result is None and error["code"] == "session_unserializable"
        # The socket stays usable.
        assert await client.call("read", "kept") == [None, True]
    assert await session_data(key) == {"kept": True}


async def test_expired_session_ends_the_socket_at_its_next_event():
    key = await create_session({"memos": []})
    async with SocketTestClient(MEMO, session=key) as client:
        await client.receive("info")
        # Expiry is noticed when the session is next read: no signal tells.
        past = timezone.now() - timedelta(seconds=1)
        await sync_to_async(lambda: Session.objects.filter(session_key=key).update(expire_date=past))()
        assert await client.call("save", "x") == [{"message": "session expired", "code": "session_expired"}, None]
        assert await client.receive("session_expired") == []
        with pytest.raises(ConnectionError):
            await client.receive()
        assert client.disconnected


async def test_session_flushed_by_a_view_ends_the_socket_at_once():
    key = await create_session({"memos": []})
    async with SocketTestClient(MEMO, session=key) as client:
        await client.receive("info")
        # A view's flush is heard through SessionEndMiddleware, without
        # waiting for the socket's next event.
        browser = Client()
        browser.cookies["sessionid"] = key
        response = await sync_to_async(browser.post)("/accounts/flush/")
        assert response.status_code == 204
        assert await client.receive("session_expired") == []
        with pytest.raises(ConnectionError):
            await client.receive()


async def test_login_required_refuses_anonymous_and_admits_a_user():
    anonymous = await create_session({})
    with pytest.raises(ConnectionRefused, match="login required"):
        async with SocketTestClient("/memo/1.0/private", session=anonymous):
            pass
    user = await sync_to_async(User.objects.create_user)("ada", password="x")
    key = await login_session(user)
    async with SocketTestClient("/memo/1.0/private", session=key) as client:
        assert await client.receive("welcome") == ["ada"]


async def test_session_is_read_only_without_use_session():
    key = await create_session({"color": "red"})
    async with SocketTestClient("/memo/1.0/snapshot", session=key) as client:
        assert await client.call("read", "color") == [None, "red"]
        error, result = await client.call("write", "color", "blue")
        assert result is None and error["code"] == "session_read_only"
        assert "use_session" in error["message"]


async def test_connect_after_the_session_ended_has_no_session():
    key = await create_session({"memos": []})
    async with SocketTestClient(MEMO, session=key) as client:
        await client.receive("info")
        past = timezone.now() - timedelta(seconds=1)
        await sync_to_async(lambda: Session.objects.filter(session_key=key).update(expire_date=past))()
        await client.call("save", "x")
        await client.receive("session_expired")
        # The same WebSocket asks again: its cookie names the ended session,
        # which it no longer has.
        with pytest.raises(ConnectionRefused) as refused:
            await client.reconnect()
        assert refused.value.code == "session_required"
        assert refused.value.data == {"message": "session required", "data": {"code": "session_required"}}


async def test_modified_saves_a_value_changed_in_place():
    key = await create_session({"memos": ["a"]})
    async with SocketTestClient(MEMO, session=key) as client:
        assert await client.call("append-in-place", "memos", "b") == [None, True]
    assert (await session_data(key))["memos"] == ["a", "b"]


async def test_call_without_an_answer_raises_ack_timeout():
    async with SocketTestClient("/echo/2.0/echo") as client:
        await client.receive("hello")
        # The client hears the question but never acks it.
        assert await client.call("ask-briefly", "anyone?") == [None, "no answer"]
        assert await client.receive("question") == ["anyone?"]


async def test_closing_while_a_listener_runs_cancels_it_and_runs_disconnect_listeners():
    from tests.project.echo.websockets import happened

    client = SocketTestClient("/echo/2.0/echo")
    await client.connect()
    await client.emit("sleep", 3600)
    await asyncio.sleep(0.1)
    await client.close()
    for _ in range(50):
        if (client.sid, "disconnect: transport close") in happened:
            break
        await asyncio.sleep(0.02)
    assert (client.sid, "sleep cancelled") in happened
    assert (client.sid, "disconnect: transport close") in happened


@pytest.fixture
def recovery_on():
    """RECOVERY_WINDOW on, in a runtime of its own."""
    from django.test import override_settings

    from rain_ws import runtime

    with override_settings(RAIN_WS={"RECOVERY_WINDOW": 30, "REQUIRE_SESSION": False}):
        runtime.reset()
        yield
    runtime.reset()


async def test_with_recovery_events_lose_their_offset_and_a_new_connection_recovers_the_socket(recovery_on):
    room = "/rooms/1.0/room"
    async with SocketTestClient(room) as listener, SocketTestClient(room) as speaker:
        assert listener.pid is not None and listener.pid.startswith(listener.sid + ".")
        assert await listener.call("join", "r") == [None, ["r"]]
        assert await speaker.call("say", "r", "before") == [None, True]
        # The listener sees what was emitted; the offset is kept aside.
        assert await listener.receive("said") == ["before", speaker.sid]
        first = listener.offset
        assert isinstance(first, str)
        # A second connection with the socket's pid and offset takes it over
        # (the first one has not gone away: it is told its socket left).
        async with SocketTestClient(room, auth={"pid": listener.pid, "offset": first}) as back:
            assert back.recovered
            assert back.sid == listener.sid
            assert back.pid == listener.pid
            assert await back.call("rooms") == [None, ["r"]]
            assert await speaker.call("say", "r", "after") == [None, True]
            assert await back.receive("said") == ["after", speaker.sid]
            assert back.offset not in (None, first)
        with pytest.raises(ConnectionError):
            await listener.receive("said")


async def test_a_pid_the_server_did_not_sign_is_refused_where_it_arrives(recovery_on, caplog):
    room = "/rooms/1.0/room"
    async with SocketTestClient(room) as listener:
        socket_id, _, signature = listener.pid.partition(".")
        another_process = "0" * len(socket_id.partition("-")[0]) + "-" + socket_id.partition("-")[2]
        forged = [
            f"{socket_id}.{'0' * len(signature)}",  # a live socket's id, a made-up signature
            f"{another_process}.{signature}",  # another process's socket, this one's signature
        ]
        for pid in forged:
            with caplog.at_level(logging.INFO, logger="rain_ws"):
                async with SocketTestClient(room, auth={"pid": pid}) as intruder:
                    assert not intruder.recovered and intruder.sid != listener.sid
            # Refused before anything was looked up or asked of other processes.
            assert "not recovered, a fresh socket instead: the pid is not one of ours" in caplog.text
            caplog.clear()
        # The socket the first pid named was not taken over.
        assert await listener.call("rooms") == [None, []]
