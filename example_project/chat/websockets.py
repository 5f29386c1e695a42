"""
The chat channel, served as the Socket.IO namespace ``/chat/1.0/chat``.

On connect the server says ``hello``. ``new-message`` is heard by everyone on
the channel: the server sends it as a ``message`` event to every socket of
the channel, the sender's included, so a lone client sees its own line. A
client that joins a room with ``join`` gets every ``room-message`` said in
that room by the others, whichever server process they are connected to:
with the Redis channel layer (``RAIN_WS_REDIS_URL``), rooms span every
process of the site.

A socket's name is its user's, or the guest name the chat page keeps in the
session (``chat.views.NAME_KEY``), as of the CONNECT.
"""

from typing import Any

import rain_ws
from rain_ws import Socket

channel = "chat"

#: The longest line the chat relays, in characters.
MAX_TEXT = 2000


def display_name(socket: Socket) -> str:
    """The name others see: the user's, or the guest name of the session."""
    user = socket.user
    if user is not None and user.is_authenticated:
        return user.get_username()
    return socket.session.get("chat_name") or f"Guest {socket.id[:4]}"


def checked_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise rain_ws.RainError("the text must be a non-empty string", "invalid")
    if len(text) > MAX_TEXT:
        raise rain_ws.RainError(f"the text is over {MAX_TEXT} characters", "invalid")
    return text


async def handle(socket: Socket) -> None:
    name = display_name(socket)
    await socket.emit("hello", {"message": "Hello Sockets!"})

    @socket.on("new-message")
    async def new_message(data: Any = None) -> dict[str, bool]:
        # {"text": ...}, as the seed's Talk button sends it.
        text = checked_text(data.get("text") if isinstance(data, dict) else None)
        line = {"text": text, "name": name, "from": socket.id}
        # Everyone on the channel hears it, the sender included.
        await socket.emit("message", line)
        await socket.broadcast.emit("message", line)
        return {"stored": True}

    @socket.on("join")
    async def join(room: str) -> dict[str, list[str]]:
        # A bad room name (not a string, empty, over 200 characters) is
        # refused with an error ack, code "invalid_room".
        already = isinstance(room, str) and room in socket.rooms
        await socket.join(room)
        if not already:
            await socket.to(room).emit("joined", {"room": room, "name": name, "from": socket.id})
        return {"rooms": sorted(socket.rooms)}

    @socket.on("leave")
    async def leave(room: str) -> dict[str, list[str]]:
        if isinstance(room, str) and room in socket.rooms:
            await socket.leave(room)
            await socket.to(room).emit("left", {"room": room, "name": name, "from": socket.id})
        return {"rooms": sorted(socket.rooms)}

    @socket.on("say")
    async def say(room: str, text: Any) -> dict[str, bool]:
        if not isinstance(room, str) or room not in socket.rooms:
            raise rain_ws.RainError("join the room first", "not_in_room")
        text = checked_text(text)
        # Everyone else in the room gets it; the sender shows its own line.
        await socket.to(room).emit("room-message", {"room": room, "text": text, "name": name, "from": socket.id})
        return {"sent": True}

    @socket.on("whoami")
    async def whoami() -> dict[str, Any]:
        # What the server knows of this socket (the connection page asks).
        return {"id": socket.id, "name": name, "rooms": sorted(socket.rooms)}
