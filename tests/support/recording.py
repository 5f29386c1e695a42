"""
python-socketio's ``AsyncClient`` on one namespace, recording what happens to
it, and a deadline-bound wait for a condition.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from tests.support.servers import Server

__all__ = ["WAIT", "RecordingClient", "until"]

#: Seconds any single step may take before a test fails instead of hanging.
WAIT = 5.0


async def until(condition: Callable[[], Any | Awaitable[Any]], what: str, timeout: float = WAIT) -> None:
    """
    Wait until ``condition()`` holds; fail with ``what`` after ``timeout``
    seconds. ``condition`` may be a coroutine function (a look at a browser's
    cookies, say): it is awaited at each try.
    """
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class RecordingClient:
    """
    One client on one namespace; ``events`` lists, in arrival order,
    ``("connect",)``, ``("disconnect", reason)`` and every event the server
    emitted, as ``(name, *args)``.

    Reconnection is on, with delays of a twentieth of a second: a client that
    the server left free to reconnect comes back within any test's wait.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.sio = socketio.AsyncClient(
            reconnection=True, reconnection_delay=0.05, reconnection_delay_max=0.1, randomization_factor=0
        )
        self.events: list[tuple[Any, ...]] = []
        self.sio.on("connect", self._connected, namespace=namespace)
        self.sio.on("disconnect", self._disconnected, namespace=namespace)
        self.sio.on("*", self._event, namespace=namespace)

    def _connected(self) -> None:
        self.events.append(("connect",))

    def _disconnected(self, reason: str) -> None:
        self.events.append(("disconnect", reason))

    def _event(self, event: str, *args: Any) -> None:
        self.events.append((event, *args))

    async def connect(self, server: Server) -> None:
        await asyncio.wait_for(
            self.sio.connect(server.url, namespaces=[self.namespace], transports=["websocket"], wait_timeout=WAIT),
            WAIT,
        )

    async def call(self, event: str, *args: Any, timeout: float = WAIT) -> Any:
        """Emit ``event`` and return the server's ack."""
        return await self.sio.call(event, args, namespace=self.namespace, timeout=timeout)

    def named(self, name: str) -> list[tuple[Any, ...]]:
        """The recorded entries called ``name``, in order."""
        return [entry for entry in self.events if entry[0] == name]

    def index(self, entry: tuple[Any, ...]) -> int:
        """Where ``entry`` first happened."""
        return self.events.index(entry)

    @property
    def disconnects(self) -> list[str]:
        """The reason of each disconnect, in order."""
        return [entry[1] for entry in self.named("disconnect")]

    async def close(self) -> None:
        await self.sio.disconnect()


class Active:
    """
    Keep a client active: emit ``echo`` every tenth of a second and check
    each ack, until :meth:`stop`.
    """

    def __init__(self, client: RecordingClient) -> None:
        self.client = client
        self.acks = 0
        self._running = True
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._running:
            number = self.acks
            assert await self.client.call("echo", number) == (None, [number])
            self.acks += 1
            await asyncio.sleep(0.1)

    async def stop(self) -> int:
        """Stop, re-raise any failure of the loop, and return how many acks came back right."""
        self._running = False
        await asyncio.wait_for(self._task, WAIT)
        return self.acks
