"""The python-socketio reference: an ``echo`` event acked with its own arguments."""

import socketio

server = socketio.AsyncServer(async_mode="asgi", transports=["websocket"])


@server.on("echo")
async def echo(sid: str, *args: object) -> tuple[object, ...]:
    # A tuple is acked as that many arguments.
    return args


application = socketio.ASGIApp(server)
