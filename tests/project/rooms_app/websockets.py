"""
A component whose listeners drive the room API from the client side, so the
tests can check rooms, broadcasts and emits to one socket through real
clients, in one process or across several.

``/rooms/1.0/room`` and ``/rooms/1.0/lobby`` are served by the same
listeners: rooms of one name in two channels must stay apart.
"""

from typing import Any

import rain_ws
from rain_ws import Socket
from rain_ws.runtime import runtime

channel = "room"
require_session = False


async def serve(socket: Socket) -> None:
    @socket.on("join")
    async def join(room: Any) -> list[str]:
        await socket.join(room)
        return sorted(socket.rooms)

    @socket.on("leave")
    async def leave(room: Any) -> list[str]:
        await socket.leave(room)
        return sorted(socket.rooms)

    @socket.on("say")
    async def say(room: Any, text: Any) -> bool:
        """Emit ``said`` to everyone in ``room`` but this socket."""
        await socket.to(room).emit("said", text, socket.id)
        return True

    @socket.on("say_to_both")
    async def say_to_both(first: Any, second: Any, text: Any) -> bool:
        """Emit ``said`` to everyone in either room but this socket, once each."""
        await socket.to(first).to(second).emit("said", text, socket.id)
        return True

    @socket.on("shout")
    async def shout(text: Any) -> bool:
        """Emit ``shouted`` to every socket of this channel but this one."""
        await socket.broadcast.emit("shouted", text, socket.id)
        return True

    @socket.on("whisper")
    async def whisper(sid: Any, text: Any) -> bool:
        """Emit ``whispered`` to the one socket ``sid``, wherever it is connected."""
        await socket.to(sid).emit("whispered", text, socket.id)
        return True

    @socket.on("rooms")
    async def rooms() -> list[str]:
        return sorted(socket.rooms)

    @socket.on("remember")
    async def remember(note: Any) -> bool:
        """Keep ``note`` in ``socket.data``: a recovered socket has it back, on any process."""
        socket.data["note"] = note
        return True

    @socket.on("recall")
    async def recall() -> Any:
        return socket.data.get("note")

    @socket.on("stats")
    async def stats() -> dict[str, int]:
        """What this process's hub holds: every count goes back down as sockets go."""
        process = runtime()
        rooms = process.rooms
        return {
            "room_count": rooms.room_count(),
            "rooms": sum(len(by_name) for by_name in rooms.rooms.values()),
            "sockets": sum(len(sockets) for sockets in rooms.sockets.values()),
            "groups": len(process.bridge.groups),
            "sessions": len(process.sessions.sessions),
        }

    @socket.on("bye")
    async def bye() -> None:
        await socket.disconnect()


async def handle(socket: Socket) -> None:
    await serve(socket)


@rain_ws.channel("lobby")
async def lobby(socket: Socket) -> None:
    await serve(socket)
