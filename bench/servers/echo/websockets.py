"""
The echo component: on the main namespace, like the other servers of the
benchmark, an ``echo`` event is acked with its own arguments.
"""

import rain_ws

channel = "/"


async def handle(socket):
    @socket.on("echo")
    async def echo(*args):
        return rain_ws.Ack(*args)
