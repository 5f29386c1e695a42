"""A component whose handlers exercise the whole handler API."""

import asyncio

import rain_ws

channel = "echo"
require_session = False

#: What happened to sockets, for in-process tests: (socket id, what).
happened: list[tuple[str, str]] = []


async def handle(socket):
    await socket.emit("hello", {"message": "Hello Sockets!", "channel": socket.channel})

    @socket.on("echo")
    async def echo(*args):
        return list(args)

    @socket.on("fail")
    async def fail(code):
        raise rain_ws.RainError("refused on purpose", code)

    @socket.on("crash")
    async def crash():
        raise ZeroDivisionError("secret detail")

    @socket.on("sleep")
    async def sleep(seconds):
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            happened.append((socket.id, "sleep cancelled"))
            raise
        return seconds

    @socket.on("ask-briefly")
    async def ask_briefly(question):
        try:
            return await socket.call("question", question, timeout=0.2)
        except rain_ws.AckTimeout:
            return "no answer"

    @socket.on("disconnect")
    async def gone(reason):
        happened.append((socket.id, f"disconnect: {reason}"))

    @socket.on("ask")
    async def ask(question):
        return await socket.call("question", question, timeout=5)

    @socket.on("bye")
    async def bye():
        await socket.disconnect()


@rain_ws.channel("sync")
def sync_handler(socket):
    @socket.on("add")
    def add(a, b):
        return a + b


@rain_ws.channel("plain")
def plain_handler(socket):
    """Plain ``def`` code calls the socket's methods without ``await``."""
    socket.emit("hello", socket.id)

    @socket.on("emit-back")
    def emit_back(text):
        socket.emit("echoed", text)
        return "emitted"

    @socket.on("join")
    def join(room):
        socket.join(room)
        return sorted(socket.rooms)

    @socket.on("say")
    def say(room, text):
        socket.to(room).emit("said", text)
        return True

    @socket.on("leave")
    def leave(room):
        socket.leave(room)
        return sorted(socket.rooms)

    @socket.on("ask")
    def ask():
        socket.call("question")

    @socket.on("bye")
    def bye():
        socket.disconnect()


def authorize(socket):
    return socket.auth.get("token") != "bad"
