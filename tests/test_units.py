"""
The runtime's parts in process, without a server: the connection tracker on
a clock the tests move, the rooms of one process with stand-in sockets, and
the session lifecycle (bind at CONNECT, load, save, the logout index).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from rain_ws.conf import RainSettings
from rain_ws.exceptions import ConnectRefused, RainError
from rain_ws.idle import ConnectionTracker
from rain_ws.layer import LayerBridge, is_socket_id, new_socket_id
from rain_ws.rooms import Rooms, check_room
from rain_ws.session_store import load_session
from rain_ws.sessions import (
    SESSION_EXPIRED,
    ConnectionSession,
    SessionIndex,
    bind_session,
)
from rain_ws.testing import create_session

# -- the tracker -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Tracked:
    def __init__(self, busy: bool = False) -> None:
        self.last_active = 0.0
        self.busy = busy
        self.reaped = False

    def reap(self) -> None:
        self.reaped = True


def tracker(clock: Clock, **settings: Any) -> ConnectionTracker:
    values = {"DISCONNECT_IDLE": True, "IDLE_TIME": 60.0, "DISCONNECT_IDLE_ON_MAX_CONN": 3, **settings}
    return ConnectionTracker(RainSettings(**values), clock=clock)


async def test_below_the_threshold_nobody_is_reaped_and_at_it_every_idle_one_is():
    clock = Clock()
    connections = tracker(clock)
    old, older = Tracked(), Tracked()
    connections.admit(older)
    connections.admit(old)
    clock.now += 61
    assert connections.idle_count() == 2
    assert connections.sweep() == 0  # 2 connections, threshold 3
    fresh = Tracked()
    connections.admit(fresh)
    assert connections.sweep() == 2
    assert (older.reaped, old.reaped, fresh.reaped) == (True, True, False)
    assert len(connections) == 1


async def test_activity_moves_a_connection_out_of_the_idle_front():
    clock = Clock()
    connections = tracker(clock)
    first, second, third = Tracked(), Tracked(), Tracked()
    for connection in (first, second, third):
        connections.admit(connection)
    clock.now += 61
    connections.touch(first)
    assert connections.sweep() == 2
    assert not first.reaped and second.reaped and third.reaped


async def test_a_busy_connection_is_not_idle():
    clock = Clock()
    connections = tracker(clock)
    busy = Tracked(busy=True)
    others = [Tracked(), Tracked()]
    connections.admit(busy)
    for connection in others:
        connections.admit(connection)
    clock.now += 61
    assert connections.sweep() == 2
    assert not busy.reaped
    assert busy.last_active == clock.now  # counted as active now


async def test_at_the_cap_idle_connections_make_room_and_others_are_refused():
    clock = Clock()
    connections = tracker(clock, MAX_CONNECTIONS=3)
    idle = [Tracked(), Tracked(), Tracked()]
    for connection in idle:
        assert connections.admit(connection)
    clock.now += 10
    assert not connections.admit(Tracked())  # none idle yet: refused
    clock.now += 61
    assert connections.admit(Tracked())  # the idle ones are reaped first
    assert all(connection.reaped for connection in idle)


# -- rooms -------------------------------------------------------------------------


@dataclass(eq=False)
class Member:
    id: str
    channel: str = "/chat/1.0/chat"
    rooms: frozenset[str] = frozenset()
    received: list[str] = field(default_factory=list)
    broken: bool = False

    def send_frames(self, text: str, buffers: list[bytes], entry: object = None) -> None:
        if self.broken:
            raise RuntimeError("the connection is closing")
        self.received.append(text)


def rooms_of_one_process() -> Rooms:
    bridge = LayerBridge(asyncio.get_running_loop())
    assert not bridge.enabled  # the test settings use the in-memory layer
    return Rooms(bridge)


async def test_room_emits_reach_members_once_and_never_the_sender():
    rooms = rooms_of_one_process()
    alice, bob, carol = (Member(rooms.new_socket_id()) for _ in range(3))
    for member in (alice, bob, carol):
        await rooms.add_socket(member)
    await rooms.join(alice, "red")
    await rooms.join(bob, "red")
    await rooms.join(bob, "blue")
    rooms.emit(alice.channel, "said", ["hi"], ["red", "blue"], exclude=alice.id)
    assert (len(alice.received), len(bob.received), len(carol.received)) == (0, 1, 0)
    assert rooms.room_count() == 3
    rooms.remove_socket(bob)
    assert rooms.room_count() == 1 and bob.rooms == frozenset()


async def test_a_socket_id_reaches_its_socket_only_and_cannot_be_joined():
    rooms = rooms_of_one_process()
    victim, attacker = Member(rooms.new_socket_id()), Member(rooms.new_socket_id())
    await rooms.add_socket(victim)
    await rooms.add_socket(attacker)
    assert is_socket_id(victim.id)
    with pytest.raises(RainError) as refused:
        check_room(victim.id)
    assert refused.value.code == "invalid_room"
    # Even a room of that name put in the index behind join()'s back is not
    # where a message to the socket id goes.
    await rooms.join(attacker, victim.id)
    rooms.emit(victim.channel, "whispered", ["psst"], [victim.id])
    assert len(victim.received) == 1 and attacker.received == []


async def test_one_member_that_fails_does_not_cut_a_room_emit_short():
    rooms = rooms_of_one_process()
    members = [Member(rooms.new_socket_id(), broken=index == 1) for index in range(3)]
    for member in members:
        await rooms.add_socket(member)
        await rooms.join(member, "lobby")
    rooms.emit(members[0].channel, "news", [1], ["lobby"])
    assert [len(member.received) for member in members] == [1, 0, 1]


async def test_socket_ids_name_their_process():
    assert is_socket_id(new_socket_id("0123abcd"))
    assert not is_socket_id("0123abcd-tooshort")
    assert not is_socket_id("nothex!!-" + "x" * 16)


# -- the session lifecycle ---------------------------------------------------------


@dataclass
class Channel:
    require_session: bool = True
    use_session: bool = True
    login_required: bool = False


class Owner:
    def __init__(self) -> None:
        self.ended = 0

    def end_session(self) -> None:
        self.ended += 1


def connection_with(session_key: str | None, index: SessionIndex) -> ConnectionSession:
    headers = [(b"cookie", f"sessionid={session_key}".encode())] if session_key else []
    return ConnectionSession({"headers": headers}, index)


def session_index() -> SessionIndex:
    return SessionIndex(LayerBridge(asyncio.get_running_loop()))


async def test_bind_refuses_without_a_session_and_with_an_anonymous_user_where_login_is_required():
    index = session_index()
    with pytest.raises(ConnectRefused) as refused:
        await bind_session(connection_with(None, index), Owner(), Channel())
    assert refused.value.code == "session_required"
    key = await create_session({"a": 1})
    with pytest.raises(ConnectRefused) as refused:
        await bind_session(connection_with(key, index), Owner(), Channel(login_required=True))
    assert refused.value.code == "login_required"


async def test_a_bound_session_loads_before_and_saves_only_what_changed_after():
    index = session_index()
    key = await create_session({"mine": 1, "theirs": 1})
    owner = Owner()
    _, session, bound = await bind_session(connection_with(key, index), owner, Channel())
    assert dict(session) == {"mine": 1, "theirs": 1}
    assert len(index.sessions) == 1  # the connection is found by its session now

    session["mine"] = 2
    # Meanwhile a request changes another key: the save keeps it.
    await sync_to_async(_set_in_store)(key, "theirs", 5)
    assert await bound.save(session) is None
    assert await sync_to_async(load_session)(key) == {"mine": 2, "theirs": 5}

    reloaded = await bound.load()
    assert dict(reloaded) == {"mine": 2, "theirs": 5} and not reloaded.modified


async def test_a_save_after_the_session_ended_says_so_and_a_bad_value_is_refused():
    index = session_index()
    key = await create_session({"a": 1})
    _, session, bound = await bind_session(connection_with(key, index), Owner(), Channel())
    session["bad"] = object()
    error = await bound.save(session)
    assert error["code"] == "session_unserializable"
    await sync_to_async(_delete_session)(key)
    del session["bad"]
    session["a"] = 2
    assert await bound.save(session) is SESSION_EXPIRED


async def test_a_session_end_reaches_its_connections_once_and_later_connects_have_no_session():
    index = session_index()
    key = await create_session({"a": 1})
    owner = Owner()
    connection = connection_with(key, index)
    await bind_session(connection, owner, Channel(require_session=False, use_session=False))
    (key_hash,) = index.sessions
    index.end(key_hash)
    index.end(key_hash)
    assert owner.ended == 1
    connection.end(owner)
    with pytest.raises(ConnectRefused) as refused:
        await bind_session(connection, owner, Channel())
    assert refused.value.code == "session_required"


def _set_in_store(key: str, name: str, value: Any) -> None:
    from importlib import import_module

    from django.conf import settings

    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    store[name] = value
    store.save()


def _delete_session(key: str) -> None:
    from importlib import import_module

    from django.conf import settings

    import_module(settings.SESSION_ENGINE).SessionStore(key).delete()


# -- the layer bridge's outgoing queue ---------------------------------------------


class StalledLayer:
    """A channel layer that never answers a send (Redis under SIGSTOP)."""

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await asyncio.Event().wait()


async def test_messages_for_a_stalled_layer_are_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch):
    from rain_ws import layer as layer_module

    monkeypatch.setattr(layer_module, "MAX_OUTGOING_BYTES", 1000)
    bridge = LayerBridge(asyncio.get_running_loop())
    bridge.layer = StalledLayer()
    first = bridge.publish(["g"], {"n": 0}, track=True, size=400)
    await asyncio.sleep(0)  # the sender takes the first, and stalls on it
    kept = [bridge.publish(["g"], {"n": n}, track=True, size=400) for n in range(1, 4)]
    assert bridge.overloaded  # 800 bytes wait, over half the bound
    assert kept[0].done() and not kept[1].done() and not kept[2].done()  # the oldest waiting was dropped
    assert bridge.undelivered == 1 and not first.done()
    bridge._sender.cancel()
