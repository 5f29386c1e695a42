"""
The chat channel, served as the Socket.IO namespace ``/chat/1.0/chat``.

A client that emits ``new-message`` gets its message back. A client that
joins a room with ``join`` gets every ``room-message`` said in that room by
the others, whichever server process they are connected to: with the Redis
channel layer (``RAIN_WS_REDIS_URL``), rooms span every process of the site.
"""

from typing import Any

import rain_ws
from rain_ws import Socket

channel = "chat"


async def handle(socket: Socket) -> None:
    await socket.emit("hello", {"message": "Hello Sockets!"})

    @socket.on("new-message")
    async def new_message(data: Any) -> dict[str, bool]:
        # Echo the message back so a lone client sees its own chat line.
        await socket.emit("message", data)
        return {"stored": True}

    @socket.on("join")
    async def join(room: str) -> dict[str, list[str]]:
        # A bad room name (not a string, empty, over 200 characters) is
        # refused with an error ack, code "invalid_room".
        await socket.join(room)
        return {"rooms": sorted(socket.rooms)}

    @socket.on("say")
    async def say(room: str, text: Any) -> dict[str, bool]:
        if not isinstance(room, str) or room not in socket.rooms:
            raise rain_ws.RainError("join the room first", "not_in_room")
        if not isinstance(text, str):
            raise rain_ws.RainError("the text must be a string", "invalid")
        # Everyone else in the room gets it; the sender shows its own line.
        await socket.to(room).emit("room-message", {"room": room, "text": text, "from": socket.id})
        return {"sent": True}
