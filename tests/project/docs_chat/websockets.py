import rain_ws

channel = "chat"


async def handle(socket):
    @socket.on("join")
    async def join(room):
        await socket.join(room)
        return {"rooms": sorted(socket.rooms)}

    @socket.on("leave")
    async def leave(room):
        await socket.leave(room)
        return {"rooms": sorted(socket.rooms)}

    @socket.on("say")
    async def say(room, text):
        if not isinstance(room, str) or room not in socket.rooms:
            raise rain_ws.RainError("join the room first", "not_in_room")
        await socket.to(room).emit("room-message", {"room": room, "text": text, "from": socket.id})
        return {"sent": True}
