"""
Long-polling across server processes behind a real nginx, without sticky
sessions.

A module's cluster, on each of channels-redis's layers in turn: a real
redis-server, two daphne processes of the test project, and nginx in front
of them in plain round robin (no ``ip_hash``): one passing WebSockets on,
one blocking them (it does not pass ``Upgrade``/``Connection``), and a
perverse one that sends every request of a session, its WebSocket too, to
the process not holding it. Consecutive
requests of one long-polling session land on either process; those that
reach the process not holding the session are relayed to it through the
channel layer.

Clients: the official socket.io-client under node (``tests/js/cluster.mjs``)
and python-socketio's AsyncClient. A client's engine sid starts with the id
of the process that holds its session, so the tests know which process owns
what, and pick clients whose sessions live in different processes.

Every wait is bounded: a stalled cluster fails a test, it does not hang it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from tests.support.nginx import Nginx, run_nginx
from tests.support.node import requires_node, run_node
from tests.support.redis import RedisServer, run_redis
from tests.support.servers import ROOT, free_port

pytestmark = pytest.mark.redis

ECHO = "/echo/2.0/echo"
ROOM = "/rooms/1.0/room"
LAYERS = {
    "RedisPubSubChannelLayer": "tests.project.settings_redis_pubsub",
    "RedisChannelLayer": "tests.project.settings_redis",
}
WAIT = 10.0
PASSWORD = "correct horse battery staple"
#: Seconds an ack of the load test may take.
LOAD_WAIT = 30.0
#: How soon a poll for the session of a dead process must get its 400.
DEAD_SESSION_ANSWER = 2.5


class Daphne:
    """
    One daphne process of the test project on a fixed port, so it can be
    killed and started again where nginx expects it.
    """

    def __init__(self, settings: str, env: dict[str, str], directory: Path, name: str) -> None:
        self.settings = settings
        self.env = env
        self.port = free_port()
        self.log_path = directory / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.process_id = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Start it and return once it serves a handshake; learn its process id from the sid."""
        assert self.process is None
        command = [
            sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "tests.project.asgi:application"
        ]
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": self.settings, "PYTHONPATH": str(ROOT), **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"daphne exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/socket.io/?EIO=4&transport=polling", timeout=2) as response:
                    body = response.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"daphne did not serve in time:\n{self.log()}") from None
                time.sleep(0.1)
        self.process_id = json.loads(body[1:])["sid"].partition(".")[0]

    def kill(self) -> None:
        """Kill it by its PID, as a crash would (SIGKILL: no goodbye to anyone)."""
        process, self.process = self.process, None
        if process is not None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Cluster:
    redis: RedisServer
    servers: tuple[Daphne, Daphne]
    proxy: Nginx
    blocked: Nginx  # passes no WebSocket
    away: Nginx  # sends every request of a session to the process not holding it

    def by_process(self, process_id: str) -> Daphne:
        for server in self.servers:
            if server.process_id == process_id:
                return server
        raise AssertionError(f"no server has the process id {process_id!r}: {[s.process_id for s in self.servers]}")

    def logs(self) -> str:
        return "\n".join(f"--- {server.port}\n{server.log()[-4000:]}" for server in self.servers)


@pytest.fixture(scope="module", params=LAYERS.values(), ids=LAYERS.keys())
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with run_redis() as redis, tempfile.TemporaryDirectory(prefix="rain_ws-cluster-") as tmp, ExitStack() as stack:
        env = {"RAIN_WS_REDIS_URL": redis.url}
        servers = (Daphne(request.param, env, Path(tmp), "first"), Daphne(request.param, env, Path(tmp), "second"))
        for server in servers:
            stack.callback(server.stop)
            server.start()
        assert servers[0].process_id != servers[1].process_id
        ports = [server.port for server in servers]
        proxy = stack.enter_context(run_nginx(ports))
        blocked = stack.enter_context(run_nginx(ports, websockets=False))
        away = stack.enter_context(run_nginx(ports, owners={server.process_id: server.port for server in servers}))
        yield Cluster(redis, servers, proxy, blocked, away)


def owner_of(engine_sid: str) -> str:
    """The id of the process that holds an engine session."""
    return engine_sid.partition(".")[0]


#: A request that only moves the proxy's round robin on.
SHIFT = "/static/rain_ws/rain.js"


async def shift(proxy: Nginx, http: aiohttp.ClientSession | None = None) -> None:
    """One request through ``proxy`` that does nothing but take a turn of its round robin."""
    async with AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(aiohttp.ClientSession())
        async with http.get(proxy.url + SHIFT, timeout=aiohttp.ClientTimeout(total=WAIT)) as response:
            assert response.status == 200, response.status
            await response.read()


def unique(text: str) -> str:
    return f"{text}-{uuid.uuid4().hex[:8]}"


# -- socket.io-client under node ---------------------------------------------------


def tour(proxy: Nginx, mode: str) -> dict[str, dict[str, Any]]:
    steps: dict[str, dict[str, Any]] = {}
    for line in run_node("cluster.mjs", "tour", proxy.url, mode, timeout=60):
        assert line["step"] not in steps, f"step {line['step']!r} reported twice"
        steps[line["step"]] = line
    return steps


def assert_toured(steps: dict[str, dict[str, Any]]) -> None:
    """Everything but the upgrade worked, between sessions held by two processes."""
    owners = steps["peers"]["owners"]
    assert owners[0] != owners[1], steps["peers"]
    assert steps["hello"]["args"] == [[{"message": "Hello Sockets!", "channel": ECHO}]] * 2
    assert steps["echo"]["replies"] == [[None, [1, "two", {"three": [3]}]]] * 2
    binary = steps["binary"]
    assert binary["replies"] == [[None, binary["sent"]]] * 2
    assert binary["sent"][0]["buffer"] == {"$bytes": [0, 1, 2, 254, 255]}
    room = steps["room"]
    assert room["said"] == [[None, True]] * 2
    a_id, b_id = room["room_ids"]
    assert room["b_got"] == ["from a", a_id]
    assert room["a_got"] == ["from b", b_id]


async def websocket_requests(proxy: Nginx, since: int, sids: list[str]) -> dict[str, dict[str, Any]]:
    """The WebSocket request of each session in nginx's log (logged when it ends), by sid."""
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 5
    while len(found) < len(sids) and time.monotonic() < deadline:
        for request in proxy.requests(since):
            if "transport=websocket" in request["uri"]:
                for sid in sids:
                    if f"sid={sid}" in request["uri"]:
                        found[sid] = request
        await asyncio.sleep(0.1)
    return found


@requires_node
@pytest.mark.node
def test_socket_io_client_with_default_options_across_processes(cluster: Cluster) -> None:
    steps = tour(cluster.proxy, "default")
    assert steps["peers"]["first"] == ["polling", "polling"]
    assert steps["upgrade"]["outcomes"] == [{"upgraded": True, "transport": "websocket"}] * 2, steps["upgrade"]
    assert_toured(steps)
    assert steps["end"]["transports"] == ["websocket", "websocket"]


@requires_node
@pytest.mark.node
async def test_socket_io_client_upgrades_when_the_websocket_reaches_the_other_process(cluster: Cluster) -> None:
    """
    Through a proxy that sends every request of a session to the process
    not holding it, the WebSocket of the upgrade too: the client upgrades
    all the same, and everything works over the relayed WebSocket.
    """
    since = cluster.away.log_size()
    steps = tour(cluster.away, "default")
    assert steps["upgrade"]["outcomes"] == [{"upgraded": True, "transport": "websocket"}] * 2, steps["upgrade"]
    assert_toured(steps)
    assert steps["end"]["transports"] == ["websocket", "websocket"]
    sids = steps["peers"]["sids"]
    websockets = await websocket_requests(cluster.away, since, sids)
    for sid in sids:
        request = websockets.get(sid)
        assert request is not None, f"no WebSocket of {sid} in nginx's log: {cluster.away.requests(since)}"
        assert request["status"] == 101, request
    # Every request of a session (a long-polling request or its WebSocket)
    # reached the process that does not hold it.
    ports = {server.process_id: server.port for server in cluster.servers}
    for request in cluster.away.requests(since):
        if "sid=" in request["uri"] and request["upstream"]:
            sid = request["uri"].split("sid=")[1].split("&")[0]
            assert request["upstream"] != f"127.0.0.1:{ports[owner_of(sid)]}", request


@requires_node
@pytest.mark.node
def test_socket_io_client_polling_only_across_processes(cluster: Cluster) -> None:
    steps = tour(cluster.proxy, "polling")
    assert steps["peers"]["first"] == ["polling", "polling"]
    assert steps["upgrade"]["outcomes"] is None
    assert_toured(steps)
    assert steps["end"]["transports"] == ["polling", "polling"]


@requires_node
@pytest.mark.node
def test_socket_io_client_stays_on_polling_when_the_proxy_blocks_websockets(cluster: Cluster) -> None:
    since = cluster.blocked.log_size()
    steps = tour(cluster.blocked, "blocked")
    assert steps["peers"]["first"] == ["polling", "polling"]
    for outcome in steps["upgrade"]["outcomes"]:
        assert outcome["upgraded"] is False, outcome
    assert_toured(steps)
    assert steps["end"]["transports"] == ["polling", "polling"]
    # The WebSocket handshakes reached Django's HTTP views, which refuse them.
    requests = cluster.blocked.requests(since)
    refused = [r for r in requests if "transport=websocket" in r["uri"]]
    assert refused and {r["status"] for r in refused} == {400}, refused
    assert all(r["status"] < 400 for r in requests if r not in refused), requests


# -- python-socketio ---------------------------------------------------------------


class Client:
    """A python-socketio client on long-polling only, recording the events it gets."""

    def __init__(self, name: str, channel: str = ROOM, reconnection: bool = False) -> None:
        self.name = name
        self.channel = channel
        self.sio = socketio.AsyncClient(
            reconnection=reconnection, reconnection_delay=0.1, reconnection_delay_max=0.5, randomization_factor=0
        )
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self._changed = asyncio.Event()
        self.sio.on("*", self._on_event, namespace=channel)
        self.sio.on("connect", self._on_connect, namespace=channel)
        self.sio.on("disconnect", self._on_disconnect, namespace=channel)

    def __repr__(self) -> str:
        return f"<Client {self.name}>"

    def _record(self, event: str, args: tuple[Any, ...]) -> None:
        self.events.append((event, args))
        self._changed.set()

    async def _on_event(self, event: str, *args: Any) -> None:
        self._record(event, args)

    async def _on_connect(self) -> None:
        self._record("connect", (self.sio.eio.sid,))

    async def _on_disconnect(self, reason: Any = None) -> None:
        self._record("disconnect", (reason,))

    async def connect(self, url: str, cookie: str | None = None) -> Client:
        headers = {"Cookie": cookie} if cookie is not None else {}
        await self.sio.connect(
            url, namespaces=[self.channel], transports=["polling"], headers=headers, wait_timeout=WAIT
        )
        return self

    @property
    def engine_sid(self) -> str:
        return self.sio.eio.sid

    @property
    def owner(self) -> str:
        return owner_of(self.engine_sid)

    @property
    def sid(self) -> str:
        return self.sio.get_sid(self.channel)

    async def call(self, event: str, *args: Any, timeout: float = WAIT) -> Any:
        error, result = await self.sio.call(event, args, namespace=self.channel, timeout=timeout)
        assert error is None, f"{self}: {event}{args!r} acked {error!r}"
        return result

    def got(self, event: str, *args: Any) -> int:
        return self.events.count((event, args))

    async def wait_until(self, done: Any, what: str, timeout: float = WAIT) -> None:
        async def arrived() -> None:
            while not done():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(arrived(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self} did not get {what} within {timeout} s; it got {self.events!r}") from None

    async def wait_for(self, event: str, *args: Any, timeout: float = WAIT) -> None:
        await self.wait_until(lambda: self.got(event, *args), f"{event}{args!r}", timeout)

    async def close(self) -> None:
        await self.sio.disconnect()


class Clients:
    def __init__(self, stack: AsyncExitStack, cluster: Cluster) -> None:
        self._stack = stack
        self.cluster = cluster

    async def connect(
        self, name: str, channel: str = ROOM, owner: str | None = None, url: str | None = None, **options: Any
    ) -> Client:
        """
        A client through the proxy; with ``owner``, one whose session that
        process holds (where the round robin put its handshake), trying again
        until it is.
        """
        cookie = options.pop("cookie", None)
        for attempt in range(12):
            client = Client(name, channel, **options)
            await client.connect(url or self.cluster.proxy.url, cookie)
            if owner is None or client.owner == owner:
                self._stack.push_async_callback(client.close)
                return client
            await client.close()
            if attempt % 2:
                await self.shift()
        raise AssertionError(f"no session of {name} landed in process {owner} in 12 handshakes")


    async def shift(self) -> None:
        """
        One request more through the proxy: made every other time, the next
        handshake takes the round robin's other turn whether a client makes
        an even or an odd number of requests.
        """
        await shift(self.cluster.proxy)


@pytest.fixture
async def clients(cluster: Cluster) -> AsyncIterator[Clients]:
    async with AsyncExitStack() as stack:
        yield Clients(stack, cluster)


async def test_python_socketio_polling_only_across_processes(cluster: Cluster, clients: Clients) -> None:
    first, second = cluster.servers
    a = await clients.connect("a", owner=first.process_id)
    b = await clients.connect("b", owner=second.process_id)
    room = unique("red")
    assert await a.call("join", room) == [room]
    assert await b.call("join", room) == [room]
    assert await a.call("say", room, "from a") is True
    await b.wait_for("said", "from a", a.sid)
    assert await b.call("say", room, "from b") is True
    await a.wait_for("said", "from b", b.sid)
    assert await a.call("whisper", b.sid, "psst") is True
    await b.wait_for("whispered", "psst", a.sid)
    assert a.sio.transport() == b.sio.transport() == "polling"
    assert a.got("said", "from a", a.sid) == 0


async def test_fifty_polling_clients_twenty_acked_events_each(cluster: Cluster, clients: Clients) -> None:
    since = cluster.proxy.log_size()
    started = time.monotonic()
    many = await asyncio.gather(*(clients.connect(f"load {n}", channel=ECHO) for n in range(50)))
    connected = time.monotonic()

    async def twenty(n: int, client: Client) -> list[Any]:
        # A generous bound per ack: 1,000 of them share the machine's cores with the servers and nginx.
        return [await client.call("echo", n, i, f"payload {n}.{i}", timeout=LOAD_WAIT) for i in range(20)]

    try:
        replies = await asyncio.wait_for(asyncio.gather(*(twenty(n, c) for n, c in enumerate(many))), 2 * LOAD_WAIT)
    except (TimeoutError, socketio.exceptions.TimeoutError):
        raise AssertionError(f"an ack did not come in time; the servers' logs:\n{cluster.logs()}") from None
    done = time.monotonic()
    for n, got in enumerate(replies):
        assert got == [[n, i, f"payload {n}.{i}"] for i in range(20)], n
    owners = {client.owner for client in many}
    # Together: python-engineio's disconnect does not send its close packet
    # while a POST of the client is under way, and then waits for the next
    # ping (up to PING_INTERVAL) to end its GET.
    await asyncio.gather(*(client.close() for client in many))
    closed = time.monotonic()
    print(
        f"\n50 polling clients x 20 acked events: connect {connected - started:.2f} s, "
        f"events {done - connected:.2f} s, close {closed - done:.2f} s, total {closed - started:.2f} s"
    )

    assert owners == {server.process_id for server in cluster.servers}, owners
    await asyncio.sleep(0.5)  # nginx logs a request when it ends
    requests = cluster.proxy.requests(since)
    bad = [request for request in requests if request["status"] >= 400]
    assert not bad, bad[:10]
    upstreams = {request["upstream"] for request in requests}
    assert upstreams == {f"127.0.0.1:{server.port}" for server in cluster.servers}, upstreams
    # Requests that reached the process not holding their session were relayed.
    ports = {server.process_id: server.port for server in cluster.servers}
    relayed = [
        request
        for request in requests
        if "sid=" in request["uri"]
        and request["upstream"] != f"127.0.0.1:{ports[owner_of(request['uri'].split('sid=')[1].split('&')[0])]}"
    ]
    print(f"{len(requests)} requests through nginx, {len(relayed)} relayed to the other process")
    assert relayed


# -- logout --------------------------------------------------------------------------


def new_user() -> str:
    username = f"user-{uuid.uuid4().hex[:12]}"
    User.objects.create_user(username, password=PASSWORD)
    return username


async def test_logout_in_one_process_ends_the_sessions_polling_sockets_everywhere(
    cluster: Cluster, clients: Clients
) -> None:
    first, second = cluster.servers
    username = await sync_to_async(new_user)()
    # unsafe=True: the server is an IP address, whose cookies aiohttp drops otherwise.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.post(
            cluster.proxy.url + "/accounts/login/", data={"username": username, "password": PASSWORD}
        ) as response:
            assert response.status == 200, await response.text()
        cookie = "; ".join(f"{morsel.key}={morsel.value}" for morsel in browser.cookie_jar)
        theirs = [
            await clients.connect("in a room, first", owner=first.process_id, cookie=cookie),
            await clients.connect("another tab, second", owner=second.process_id, cookie=cookie),
            await clients.connect("third tab, second", owner=second.process_id, cookie=cookie),
        ]
        await theirs[0].call("join", unique("red"))
        bystanders = [
            await clients.connect("bystander, first", owner=first.process_id),
            await clients.connect("bystander, second", owner=second.process_id),
        ]
        for bystander in bystanders:
            assert (await bystander.call("stats"))["sessions"] == 1

        # The logout reaches the first process straight, not through the proxy.
        async with browser.post(first.url + "/accounts/logout/") as response:
            assert response.status == 200, await response.text()

    for client in theirs:
        await client.wait_for("disconnect", "server disconnect")
        assert [name for name, _ in client.events] == ["connect", "session_expired", "disconnect"], client.events
    for bystander in bystanders:
        # (Other counts of the process may include sessions of earlier tests' clients that are timing out.)
        stats = await bystander.call("stats")
        assert stats["sessions"] == 0, stats
        assert [name for name, _ in bystander.events] == ["connect"], bystander.events


# -- a process dies -------------------------------------------------------------------
# Last in the module: it kills a process of the cluster (and starts it again).


async def test_when_the_owner_dies_its_sessions_get_400_and_their_clients_handshake_again(
    cluster: Cluster, clients: Clients
) -> None:
    victim = await clients.connect("victim", reconnection=True)
    dead = cluster.by_process(victim.owner)
    alive = next(server for server in cluster.servers if server is not dead)
    witness = await clients.connect("witness", owner=alive.process_id)
    room = unique("red")
    await victim.call("join", room)
    await witness.call("join", room)
    dead_sid = victim.engine_sid

    dead.kill()
    try:
        # A poll for the dead session, through the proxy: whichever process
        # it reaches, the session is gone.
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.get(
                cluster.proxy.url + "/socket.io/",
                params={"EIO": "4", "transport": "polling", "sid": dead_sid},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as response:
                status, body = response.status, await response.text()
            answered = time.monotonic() - started
        print(f"\na poll for a session of the dead process: {status} {body} after {answered:.2f} s")
        assert status == 400, body
        assert json.loads(body)["code"] == 1, body

        # The client has made a new session, in the live process, and works.
        def reconnected() -> bool:
            name, args = victim.events[-1]
            return name == "connect" and args[0] != dead_sid

        await victim.wait_until(reconnected, "a new session", timeout=WAIT)
        recovered = time.monotonic() - started
        print(f"the client's new session after {recovered:.2f} s")
        assert [name for name, _ in victim.events] == ["connect", "disconnect", "connect"], victim.events
        assert owner_of(victim.events[-1][1][0]) == alive.process_id, victim.events
        await victim.call("join", room)
        await victim.call("say", room, "back")
        await witness.wait_for("said", "back", victim.sid)
        assert answered <= DEAD_SESSION_ANSWER, (
            f"the 400 for a session of a dead process came after {answered:.2f} s "
            f"(expected within {DEAD_SESSION_ANSWER} s)"
        )
    finally:
        dead.start()
