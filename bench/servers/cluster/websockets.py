"""
The component of bench/cluster.py and its smoke test, on the main namespace
like the echo component: ``join`` puts the socket in a room (acked with no
arguments once it is in, which on a Redis layer means every process reaches
it there), ``fanout`` sends ``news`` to everyone in a room but the sender, and
``broadcast`` sends ``news`` to every socket of the channel but the sender,
in every process.
"""

import rain_ws

channel = "/"


async def handle(socket):
    @socket.on("join")
    async def join(room):
        await socket.join(room)
        return rain_ws.Ack()

    @socket.on("fanout")
    async def fanout(room, *args):
        await socket.to(room).emit("news", *args)

    @socket.on("broadcast")
    async def broadcast(*args):
        await socket.broadcast.emit("news", *args)
