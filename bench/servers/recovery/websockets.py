"""
The echo component with one more listener, for bench/recovery.py: ``reflect``
emits ``reflected`` back to the socket with the same arguments
(``socket.emit``, no ack), the path whose events carry an offset and are
logged when ``RECOVERY_WINDOW`` is set (acks carry none). ``echo``, ``join``
and ``fanout`` are the echo component's (``bench/servers/echo``).
"""

from bench.servers.echo.websockets import handle as echo_handle

channel = "/"


async def handle(socket):
    await echo_handle(socket)

    @socket.on("reflect")
    async def reflect(*args):
        await socket.emit("reflected", *args)
