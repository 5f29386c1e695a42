"""A channel that keeps its state in the Django session, for bench/sessions.py."""

channel = "/notes"
use_session = True


async def handle(socket):
    @socket.on("read")
    async def read(key):
        return socket.session.get(key)

    @socket.on("write")
    async def write(key, value):
        socket.session[key] = value
        return True
