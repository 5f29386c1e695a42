"""
The python-socketio reference: ``echo`` acked with its own arguments,
``join`` to enter a room (acked with no arguments), and ``fanout`` to send
``news`` to a room, leaving the sender out.

``application`` serves the WebSocket transport only, like the other servers
of the WebSocket scenarios; ``polling_application`` (the ``polling``
scenario) has python-socketio's default transports, long-polling with the
upgrade to WebSocket offered, as rain_ws and Node socket.io do.
"""

import socketio


def make_server(**options: object) -> socketio.AsyncServer:
    server = socketio.AsyncServer(async_mode="asgi", **options)

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

    return server


server = make_server(transports=["websocket"])
application = socketio.ASGIApp(server)

polling_server = make_server()
polling_application = socketio.ASGIApp(polling_server)
