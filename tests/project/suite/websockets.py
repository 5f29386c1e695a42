"""The handlers the official Socket.IO protocol test suite talks to."""

import rain_ws


@rain_ws.channel("/")
async def main(socket):
    await socket.emit("auth", socket.auth)

    @socket.on("message")
    async def message(*args):
        await socket.emit("message-back", *args)

    @socket.on("message-with-ack")
    async def message_with_ack(*args):
        return rain_ws.Ack(*args)


@rain_ws.channel("/custom")
async def custom(socket):
    await socket.emit("auth", socket.auth)
