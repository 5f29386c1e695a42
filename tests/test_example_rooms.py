"""
The example project scaled out as docs/deployment.rst says: two daphne
processes of it on one redis-server (``RAIN_WS_REDIS_URL``) and one
database; a room message said on one process reaches the room's members on
the other, a new-message reaches every process, and the chat's documented
behaviour is unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass

import pytest

from tests.support.redis import run_redis
from tests.support.servers import ROOT, Server, run_server
from tests.test_example_project import CHANNEL, EXAMPLE, example_env, get_page, session_cookie
from tests.test_redis import Client, unique

pytestmark = pytest.mark.redis


@dataclass
class Site:
    first: Server
    second: Server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    database = tmp_path_factory.mktemp("example-rooms") / "db.sqlite3"
    with run_redis() as redis, ExitStack() as stack:
        env = {**example_env(database), "RAIN_WS_REDIS_URL": redis.url}
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        server_env = {
            "PYTHONPATH": f"{EXAMPLE}{os.pathsep}{ROOT}",
            "RAIN_WS_EXAMPLE_DB": str(database),
            "RAIN_WS_REDIS_URL": redis.url,
        }
        first, second = (
            stack.enter_context(
                run_server(settings="mysite.settings", application="mysite.asgi:application", env=server_env)
            )
            for _ in range(2)
        )
        yield Site(first, second)


Connect = Callable[[str, Server], Awaitable[Client]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Connect a chat client to a server, as a visitor of its page; all are closed at the end."""
    async with AsyncExitStack() as stack:

        async def connect(name: str, server: Server) -> Client:
            client = Client(name, CHANNEL)
            stack.push_async_callback(client.close)
            return await client.connect(server, cookie=session_cookie(server))

        yield connect


async def test_a_room_message_crosses_to_the_other_process(site: Site, connect: Connect) -> None:
    sender = await connect("sender", site.first)
    member = await connect("member", site.second)
    outsider = await connect("outsider", site.second)
    room = unique("lobby")
    assert await sender.call("join", room) == {"rooms": [room]}
    assert await member.call("join", room) == {"rooms": [room]}

    sender_name = (await sender.call("whoami"))["name"]
    member_name = (await member.call("whoami"))["name"]
    # The member's join was told to the room, across the processes too.
    await sender.wait_for("joined", {"room": room, "name": member_name, "from": member.sid})

    assert await sender.call("say", room, "hi from the first process") == {"sent": True}
    said = {"room": room, "text": "hi from the first process", "name": sender_name, "from": sender.sid}
    await member.wait_for("room-message", said)
    assert await member.call("say", room, "hi back") == {"sent": True}
    await sender.wait_for("room-message", {"room": room, "text": "hi back", "name": member_name, "from": member.sid})

    assert member.got("room-message", said) == 1
    assert [message["text"] for message in sender.texts("room-message")] == ["hi back"]
    assert outsider.texts("room-message") == []


async def test_the_documented_chat_behaviour_is_unchanged(site: Site, connect: Connect) -> None:
    client = await connect("client", site.second)
    await client.wait_for("hello", {"message": "Hello Sockets!"})
    assert await client.call("new-message", {"text": "hi"}) == {"stored": True}
    name = (await client.call("whoami"))["name"]
    await client.wait_for("message", {"text": "hi", "name": name, "from": client.sid})


async def test_everyone_hears_a_new_message_on_every_process(site: Site, connect: Connect) -> None:
    sender = await connect("sender", site.first)
    listener = await connect("listener", site.second)
    assert await sender.call("new-message", {"text": "to everyone"}) == {"stored": True}
    name = (await sender.call("whoami"))["name"]
    await listener.wait_for("message", {"text": "to everyone", "name": name, "from": sender.sid})


async def test_saying_to_a_room_checks_its_input(site: Site, connect: Connect) -> None:
    client = await connect("client", site.first)

    async def error_code(event: str, *args: object) -> str:
        error, result = await client.sio.call(event, args, namespace=CHANNEL, timeout=10)
        assert result is None
        return error["code"]

    assert await error_code("say", "not joined", "text") == "not_in_room"
    assert await error_code("say", ["a", "list"], "text") == "not_in_room"
    assert await error_code("join", "") == "invalid_room"
    assert await error_code("join", "x" * 201) == "invalid_room"
    await client.call("join", "lobby")
    assert await error_code("say", "lobby", {"not": "text"}) == "invalid"


def test_the_page_shows_rooms(site: Site) -> None:
    status, page = get_page(f"{site.first.url}/")
    assert status == 200
    assert 'socket.emit("join", "lobby"' in page
    assert 'socket.on("room-message"' in page
    assert "RAIN_WS_REDIS_URL" in page
    # The chat itself runs on rain.js, served by the process.
    assert '<script src="/static/rain_ws/rain.js"></script>' in page
    assert get_page(f"{site.first.url}/static/rain_ws/rain.js")[0] == 200
