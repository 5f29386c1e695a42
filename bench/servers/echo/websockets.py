"""
The echo component: on the main namespace, like the other servers of the
benchmark, an ``echo`` event is acked with its own arguments, ``join`` puts
the socket in a room (acked with no arguments once it is in), and ``fanout``
sends ``news`` to everyone in a room but the sender.
"""

import rain_ws

channel = "/"


async def handle(socket):
    @socket.on("echo")
    async def echo(*args):
        return rain_ws.Ack(*args)

    @socket.on("join")
    async def join(room):
        await socket.join(room)
        return rain_ws.Ack()

    @socket.on("fanout")
    async def fanout(room, *args):
        await socket.to(room).emit("news", *args)
