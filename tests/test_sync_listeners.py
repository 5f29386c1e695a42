"""
Plain ``def`` handlers and listeners call the socket's methods without
``await``, and each call takes effect: ``emit``, ``join``, ``leave``,
``to(...).emit`` and ``disconnect``. ``call``, which waits for the client,
raises at once there instead of returning a coroutine nobody awaits.
"""

import warnings

import pytest

from rain_ws.testing import SocketTestClient

PLAIN = "/echo/2.0/plain"


async def test_a_def_handler_and_listener_emit_without_await():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would warn
        async with SocketTestClient(PLAIN) as client:
            assert await client.receive("hello") == [client.sid]
            assert await client.call("emit-back", "hi") == [None, "emitted"]
            assert await client.receive("echoed") == ["hi"]


async def test_def_listeners_join_say_to_a_room_and_leave():
    async with SocketTestClient(PLAIN) as alice, SocketTestClient(PLAIN) as bob:
        assert await alice.call("join", "lobby") == [None, ["lobby"]]
        assert await bob.call("join", "lobby") == [None, ["lobby"]]
        assert await bob.call("say", "lobby", "hello from bob") == [None, True]
        assert await alice.receive("said") == ["hello from bob"]
        assert await alice.call("leave", "lobby") == [None, []]
        assert await bob.call("say", "lobby", "anyone?") == [None, True]
        assert await alice.received_nothing()


async def test_a_def_listener_disconnects_its_socket():
    async with SocketTestClient(PLAIN) as client:
        await client.emit("bye")
        with pytest.raises(ConnectionError):
            await client.receive("never")
        assert client.disconnected


async def test_call_from_a_def_listener_raises_at_once_with_what_to_do(settings_debug):
    async with SocketTestClient(PLAIN) as client:
        error, result = await client.call("ask")
    assert result is None and error["code"] == "internal_error"
    assert "must be awaited" in error["message"] and "async def" in error["message"]


@pytest.fixture
def settings_debug():
    from django.test import override_settings

    with override_settings(DEBUG=True):  # the ack then carries the exception's text
        yield
