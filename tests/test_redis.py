"""
Rooms, broadcasts and logout across server processes, through Redis.

Two daphne processes of the test project share one real redis-server, on
each of channels-redis's layers. Clients are official python-socketio
clients; the rooms component (``tests/project/rooms_app``) drives the room
API.

"Exactly once" and "never" are checked without sleeping: messages from one
process reach another in the order they were sent, so once a later message
has arrived, every copy of an earlier one that was going to arrive has too.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import socketio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from yarl import URL

from tests.support.redis import RedisServer, run_redis
from tests.support.servers import ROOT, Server, run_server
from tests.support.wire import log_line

pytestmark = pytest.mark.redis

ROOM = "/rooms/1.0/room"
LOBBY = "/rooms/1.0/lobby"
WAIT = 10.0
PASSWORD = "correct horse battery staple"

LAYERS = {
    "RedisChannelLayer": "tests.project.settings_redis",
    "RedisPubSubChannelLayer": "tests.project.settings_redis_pubsub",
}


@dataclass
class Cluster:
    """Two server processes and the Redis between them."""

    settings: str
    redis: RedisServer
    first: Server
    second: Server


@pytest.fixture(scope="module", params=LAYERS.values(), ids=LAYERS.keys())
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with run_redis() as redis, ExitStack() as stack:
        env = {"RAIN_WS_REDIS_URL": redis.url}
        first = stack.enter_context(run_server(settings=request.param, env=env))
        second = stack.enter_context(run_server(settings=request.param, env=env))
        yield Cluster(request.param, redis, first, second)


class Client:
    """
    A python-socketio client on one channel, recording the events it gets
    and whether the server disconnected it.
    """

    def __init__(self, name: str, channel: str = ROOM) -> None:
        self.name = name
        self.channel = channel
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self._changed = asyncio.Event()
        self.sio.on("*", self._on_event, namespace=channel)
        self.sio.on("disconnect", self._on_disconnect, namespace=channel)

    def __repr__(self) -> str:
        return f"<Client {self.name}>"

    async def _on_event(self, event: str, *args: Any) -> None:
        self.events.append((event, args))
        self._changed.set()

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.events.append(("disconnect", (reason,)))
        self._changed.set()

    async def connect(self, server: Server, cookie: str | None = None) -> Client:
        headers = {"Cookie": cookie} if cookie is not None else {}
        await self.sio.connect(
            server.url, namespaces=[self.channel], transports=["websocket"], headers=headers, wait_timeout=WAIT
        )
        return self

    @property
    def sid(self) -> str:
        return self.sio.get_sid(self.channel)

    async def call(self, event: str, *args: Any) -> Any:
        """Emit ``event``; return the listener's result, failing on an error ack."""
        error, result = await self.sio.call(event, args, namespace=self.channel, timeout=WAIT)
        assert error is None, f"{self}: {event}{args!r} acked {error!r}"
        return result

    async def join(self, *rooms: str) -> None:
        for room in rooms:
            await self.call("join", room)

    def got(self, event: str, *args: Any) -> int:
        """How many times ``event`` came with exactly ``args``."""
        return self.events.count((event, args))

    def texts(self, event: str) -> list[Any]:
        """The first arguments of every ``event`` so far."""
        return [args[0] for name, args in self.events if name == event]

    async def wait_for(self, event: str, *args: Any, timeout: float = WAIT) -> None:
        """Return once ``event`` has come with exactly ``args``."""

        async def arrived() -> None:
            while not self.got(event, *args):
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(arrived(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self} did not get {event}{args!r}; it got {self.events!r}") from None

    async def close(self) -> None:
        await self.sio.disconnect()


class Clients:
    """Clients made by a test, all disconnected at its end."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self._stack = stack

    async def connect(
        self, name: str, server: Server, *rooms: str, channel: str = ROOM, cookie: str | None = None
    ) -> Client:
        client = Client(name, channel)
        self._stack.push_async_callback(client.close)
        await client.connect(server, cookie)
        await client.join(*rooms)
        return client


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    async with AsyncExitStack() as stack:
        yield Clients(stack)


def unique(text: str) -> str:
    """``text`` made unique, so that no test sees another's messages."""
    return f"{text}-{uuid.uuid4().hex[:8]}"


async def test_room_message_crosses_processes_once_and_never_reaches_the_sender(
    cluster: Cluster, clients: Clients
) -> None:
    red, blue = unique("red"), unique("blue")
    sender = await clients.connect("sender", cluster.first, red)
    local_member = await clients.connect("local member", cluster.first, red)
    local_outsider = await clients.connect("local outsider", cluster.first, blue)
    remote_members = [await clients.connect(f"remote member {n}", cluster.second, red) for n in range(2)]
    remote_outsider = await clients.connect("remote outsider", cluster.second, blue)
    lobby = await clients.connect("same room name, other channel", cluster.second, red, channel=LOBBY)

    await sender.call("say", red, "hello")
    await sender.call("say", red, "marker")
    for member in remote_members:
        await member.wait_for("said", "marker", sender.sid)
    # A message back from the second process: when it is in, the first has
    # read everything the layer brought it before.
    await remote_members[0].call("say", red, "back")
    await sender.wait_for("said", "back", remote_members[0].sid)
    await local_member.wait_for("said", "back", remote_members[0].sid)

    for member in [local_member, *remote_members]:
        assert member.got("said", "hello", sender.sid) == 1, member.events
    assert sender.texts("said") == ["back"]
    for outsider in (local_outsider, remote_outsider, lobby):
        assert outsider.texts("said") == [], outsider.events


async def test_a_socket_in_several_rooms_gets_a_message_to_them_once(cluster: Cluster, clients: Clients) -> None:
    red, blue = unique("red"), unique("blue")
    sender = await clients.connect("sender", cluster.first, red, blue)
    in_both = await clients.connect("in both", cluster.second, red, blue)
    only_red = await clients.connect("only red", cluster.second, red)
    only_blue = await clients.connect("only blue", cluster.second, blue)

    await sender.call("say_to_both", red, blue, "to both")
    await sender.call("say_to_both", red, blue, "marker")
    for client in (in_both, only_red, only_blue):
        await client.wait_for("said", "marker", sender.sid)
        assert client.got("said", "to both", sender.sid) == 1, client.events
    assert sender.texts("said") == []


async def test_emit_to_a_socket_id_in_another_process(cluster: Cluster, clients: Clients) -> None:
    sender = await clients.connect("sender", cluster.first)
    target = await clients.connect("target", cluster.second)
    bystander = await clients.connect("bystander", cluster.second)
    local_bystander = await clients.connect("local bystander", cluster.first)

    await sender.call("whisper", target.sid, "psst")
    await target.wait_for("whispered", "psst", sender.sid)
    # The same way back, and a second whisper to the bystander's process
    # that arrives after the first.
    await target.call("whisper", sender.sid, "heard you")
    await sender.wait_for("whispered", "heard you", target.sid)
    await sender.call("whisper", bystander.sid, "marker")
    await bystander.wait_for("whispered", "marker", sender.sid)

    assert target.got("whispered", "psst", sender.sid) == 1
    assert bystander.texts("whispered") == ["marker"]
    assert local_bystander.texts("whispered") == []


async def test_no_socket_can_join_another_sockets_private_address(cluster: Cluster, clients: Clients) -> None:
    # The attack: join a room named after the victim's socket id, to read what
    # others whisper to it and to pass `room in socket.rooms` checks.
    victim = await clients.connect("victim", cluster.first)
    local_attacker = await clients.connect("local attacker", cluster.first)
    remote_attacker = await clients.connect("remote attacker", cluster.second)
    friend = await clients.connect("friend", cluster.second)

    for attacker in (local_attacker, remote_attacker):
        error, result = await attacker.sio.call("join", (victim.sid,), namespace=ROOM, timeout=WAIT)
        assert error["code"] == "invalid_room" and "socket id" in error["message"], error
        assert await attacker.call("rooms") == []

    await friend.call("whisper", victim.sid, "for the victim only")
    await victim.wait_for("whispered", "for the victim only", friend.sid)
    await friend.call("whisper", remote_attacker.sid, "marker")
    await remote_attacker.wait_for("whispered", "marker", friend.sid)
    await friend.call("whisper", local_attacker.sid, "marker")
    await local_attacker.wait_for("whispered", "marker", friend.sid)
    assert local_attacker.texts("whispered") == ["marker"]
    assert remote_attacker.texts("whispered") == ["marker"]


async def test_broadcast_reaches_every_socket_of_the_channel_in_both_processes(
    cluster: Cluster, clients: Clients
) -> None:
    sender = await clients.connect("sender", cluster.first)
    others = [
        await clients.connect("local", cluster.first),
        await clients.connect("remote", cluster.second),
        await clients.connect("remote in a room", cluster.second, unique("red")),
    ]
    lobby = await clients.connect("other channel", cluster.second, channel=LOBBY)
    text = unique("everyone")

    await sender.call("shout", text)
    for other in others:
        await other.wait_for("shouted", text, sender.sid)
    await others[1].call("shout", "back")
    await sender.wait_for("shouted", "back", others[1].sid)

    for other in others:
        assert other.got("shouted", text, sender.sid) == 1
    assert sender.texts("shouted") == ["back"]
    assert lobby.texts("shouted") == []


def announce(cluster: Cluster, *args: str) -> str:
    """Run the test project's ``announce`` command in a process of its own; return its output."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": cluster.settings,
        "RAIN_WS_REDIS_URL": cluster.redis.url,
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-m", "django", "announce", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_broadcast_from_a_management_command_reaches_both_processes(
    cluster: Cluster, clients: Clients
) -> None:
    red = unique("red")
    members = [
        await clients.connect("member 1", cluster.first, red),
        await clients.connect("member 2", cluster.second, red),
    ]
    outsiders = [
        await clients.connect("outsider 1", cluster.first),
        await clients.connect("outsider 2", cluster.second),
    ]
    lobby = await clients.connect("other channel", cluster.second, red, channel=LOBBY)
    to_room, to_all = unique("to the room"), unique("to all")

    assert "sent news" in announce(cluster, ROOM, "news", f'"{to_room}"', '{"n": 1}', "--room", red)
    for member in members:
        await member.wait_for("news", to_room, {"n": 1})
    announce(cluster, ROOM, "news", f'"{to_all}"')
    for client in members + outsiders:
        # Sent after the room's message, so any copy of that is in by now.
        await client.wait_for("news", to_all)
        assert client.texts("news") == ([to_room, to_all] if client in members else [to_all])
    assert lobby.texts("news") == []


class Browser:
    """The page beside the sockets: an HTTP client keeping one server's cookies."""

    def __init__(self, server: Server) -> None:
        self.server = server
        # unsafe=True: the server is an IP address, whose cookies aiohttp drops otherwise.
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    @property
    def cookie(self) -> str:
        """The session cookie, as the Cookie header of a WebSocket handshake."""
        morsel = self.http.cookie_jar.filter_cookies(URL(self.server.url)).get(settings.SESSION_COOKIE_NAME)
        assert morsel is not None, "the server gave this browser no session cookie"
        return f"{settings.SESSION_COOKIE_NAME}={morsel.value}"

    async def post(self, path: str, **options: Any) -> None:
        async with self.http.post(self.server.url + path, **options) as response:
            assert response.status == 200, f"POST {path}: {response.status} {await response.text()}"

    async def close(self) -> None:
        await self.http.close()


def new_user() -> str:
    username = f"user-{uuid.uuid4().hex[:12]}"
    User.objects.create_user(username, password=PASSWORD)
    return username


async def test_logout_in_one_process_ends_the_sessions_sockets_in_the_other(
    cluster: Cluster, clients: Clients
) -> None:
    username = await sync_to_async(new_user)()
    browser = Browser(cluster.first)
    try:
        await browser.post("/accounts/login/", data={"username": username, "password": PASSWORD})
        cookie = browser.cookie
        theirs = [
            await clients.connect("in a room", cluster.second, unique("red"), cookie=cookie),
            await clients.connect("another tab", cluster.second, cookie=cookie),
            await clients.connect("same process as the logout", cluster.first, cookie=cookie),
        ]
        bystander = await clients.connect("bystander", cluster.second)
        stats = await bystander.call("stats")
        assert stats["sessions"] == 1, stats

        await browser.post("/accounts/logout/")
    finally:
        await browser.close()

    for client in theirs:
        await client.wait_for("disconnect", "server disconnect")
        assert [name for name, _ in client.events] == ["session_expired", "disconnect"], client.events
    stats = await bystander.call("stats")
    assert (stats["room_count"], stats["sockets"], stats["sessions"]) == (0, 1, 0), stats
    assert bystander.events == []


UNDELIVERED = re.compile(r"did not reach other processes \((\d+) so far\)")


async def delivered_again(sender: Client, receiver: Client, room: str, seconds: float) -> int:
    """
    Say numbered probes to ``room`` until ``receiver`` gets one; return how
    many were sent. Probes sent while the layer is still down are lost.
    """
    deadline = time.monotonic() + seconds
    sent = 0
    while True:
        sent += 1
        await sender.call("say", room, f"probe {sent}")
        try:
            await receiver.wait_for("said", f"probe {sent}", sender.sid, timeout=0.25)
            return sent
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"no probe crossed within {seconds} s: {receiver.events!r}") from None


async def test_a_redis_restart_loses_only_what_was_sent_while_it_was_down(cluster: Cluster, clients: Clients) -> None:
    red, blue, green = unique("red"), unique("blue"), unique("green")
    a = await clients.connect("a", cluster.first, red, blue)
    b = await clients.connect("b", cluster.first, red)
    c = await clients.connect("c", cluster.second, red)
    d = await clients.connect("d", cluster.second, blue)
    e = await clients.connect("e", cluster.second, red, blue)
    rooms = {client: await client.call("rooms") for client in (a, b, c, d, e)}
    await delivered_again(a, c, red, WAIT)
    log_start = len(cluster.first.log())

    cluster.redis.stop()
    try:
        # Local delivery goes on without Redis; the other process misses it.
        await a.call("say", red, "while down")
        await b.wait_for("said", "while down", a.sid)
        # A room first joined in a process while Redis is down.
        await d.join(green)
        line = await log_line(cluster.first, "did not reach other processes", since=log_start, timeout=WAIT)
        assert line is not None, cluster.first.log()[log_start:]
        match = UNDELIVERED.search(line)
        assert match is not None and int(match.group(1)) >= 1, line
    finally:
        cluster.redis.start()

    await delivered_again(a, c, red, 20)
    await delivered_again(c, a, red, 20)

    # Every membership, on both sides, made it through, and so did the
    # channel-wide and per-socket routes.
    rooms[d] = sorted([*rooms[d], green])
    for client, before in rooms.items():
        assert await client.call("rooms") == before, client
    await a.call("say", blue, "blue again")
    await d.wait_for("said", "blue again", a.sid)
    await e.wait_for("said", "blue again", a.sid)
    await e.call("say", red, "red again")
    for client in (a, b, c):
        await client.wait_for("said", "red again", e.sid)
    await d.call("whisper", b.sid, "psst")
    await b.wait_for("whispered", "psst", d.sid)
    await b.call("shout", "shout again")
    for client in (a, c, d, e):
        await client.wait_for("shouted", "shout again", b.sid)
    # What was said while Redis was down is lost to the other process, not
    # delivered late.
    assert c.texts("said").count("while down") == 0
    assert e.texts("said").count("while down") == 0
    # The room joined during the outage is joined across processes too.
    await a.call("say", green, "green at last")
    await d.wait_for("said", "green at last", a.sid)
