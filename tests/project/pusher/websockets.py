"""
A component whose server side acts on its own, outside any listener: it
pushes events from a task and calls the client from a task. The tests of idle
connections and of slow clients need traffic that no client event drives.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any

import rain_ws

channel = "push"
require_session = False


async def handle(socket):
    tasks: set[asyncio.Task[None]] = set()

    def start(work: Coroutine[Any, Any, None]) -> None:
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def push(count: int, size: int, every: float) -> None:
        data = "x" * size
        for number in range(count):
            if not socket.connected:
                return
            await socket.emit("data", number, data)
            await asyncio.sleep(every)
        await socket.emit("pushed", count)

    async def ask(question: str) -> None:
        try:
            answer = await socket.call("question", question, timeout=30)
        except (rain_ws.AckTimeout, rain_ws.SocketDisconnected):
            return
        await socket.emit("answer", answer)

    @socket.on("stream")
    async def stream(count, size, every):
        """Emit ``count`` events ``data`` of ``size`` characters, ``every`` seconds apart, then ``pushed``."""
        start(push(count, size, every))
        return count

    @socket.on("ask_later")
    async def ask_later(question):
        """Call the client with ``question`` from a task; emit ``answer`` with its ack."""
        start(ask(question))
        return True

    @socket.on("disconnect")
    async def disconnect(reason):
        for task in list(tasks):
            task.cancel()
