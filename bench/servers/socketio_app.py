"""
The python-socketio reference: ``echo`` acked with its own arguments,
``join`` to enter a room (acked with no arguments), and ``fanout`` to send
``news`` to a room, leaving the sender out.
"""

import socketio

server = socketio.AsyncServer(async_mode="asgi", transports=["websocket"])


@server.on("echo")
async def echo(sid: str, *args: object) -> tuple[object, ...]:
    # A tuple is acked as that many arguments.
    return args


@server.on("join")
async def join(sid: str, room: str) -> None:
    # None is acked with no arguments.
    await server.enter_room(sid, room)


@server.on("fanout")
async def fanout(sid: str, room: str, *args: object) -> None:
    # A tuple is sent as that many arguments.
    await server.emit("news", args, room=room, skip_sid=sid)


application = socketio.ASGIApp(server)
