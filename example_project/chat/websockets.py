"""The chat channel, served as the Socket.IO namespace ``/chat/1.0/chat``."""

from typing import Any

from rain_ws import Socket

channel = "chat"


async def handle(socket: Socket) -> None:
    await socket.emit("hello", {"message": "Hello Sockets!"})

    @socket.on("new-message")
    async def new_message(data: Any) -> dict[str, bool]:
        # Echo the message back so a lone client sees its own chat line.
        await socket.emit("message", data)
        return {"stored": True}
