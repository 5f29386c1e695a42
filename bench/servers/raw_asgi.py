"""
The raw ASGI reference: the least an ASGI application does to keep Socket.IO
clients connected, as the floor for memory per idle connection.

It accepts the WebSocket, sends the Engine.IO OPEN packet, answers a CONNECT
on the main namespace, and pings every open connection every 25 s (as every
server of the benchmark does) from one task per process;
every other frame is read and dropped. No framework, no per-connection object
beyond what the ASGI server makes, no pong deadline: what the server (uvicorn
or daphne) costs per connection, next to nothing of the application's.
"""

import asyncio
import json
import os
import secrets
from typing import Any

#: Seconds between pings (``RAW_ASGI_PING_INTERVAL``: bench/scale.py sets it).
PING_INTERVAL = float(os.environ.get("RAW_ASGI_PING_INTERVAL", "25"))

#: The ``send`` callables of the open WebSocket connections.
_open: set[Any] = set()
_pinger: asyncio.Task[None] | None = None


async def _ping_every_interval() -> None:
    while True:
        await asyncio.sleep(PING_INTERVAL)
        for send in list(_open):
            try:
                await send({"type": "websocket.send", "text": "2"})
            except OSError:  # gone; its receive loop ends on websocket.disconnect
                _open.discard(send)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _pinger
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    opening = {
        "sid": secrets.token_urlsafe(15),
        "upgrades": [],
        "pingInterval": round(PING_INTERVAL * 1000),
        "pingTimeout": 20000,
        "maxPayload": 1000000,
    }
    await send({"type": "websocket.send", "text": "0" + json.dumps(opening)})
    if _pinger is None:
        _pinger = asyncio.get_running_loop().create_task(_ping_every_interval())
    _open.add(send)
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if (message.get("text") or "").startswith("40"):
                await send({"type": "websocket.send", "text": f'40{{"sid":"{secrets.token_urlsafe(15)}"}}'})
    finally:
        _open.discard(send)
