"""
The bare Channels reference: Channels' stock ``AsyncWebsocketConsumer``
speaking just enough Engine.IO and Socket.IO for the load generator.

It answers the handshake (the Engine.IO OPEN packet, then the CONNECT reply
on the main namespace), acks ``echo`` events with their own arguments,
decoding and encoding with :mod:`json` as any consumer would, and does rooms
the Channels way: ``join`` adds the consumer's channel to a layer group
(``group_add``, and ``self.groups`` so that the stock disconnect leaves it),
and ``fanout`` sends the encoded ``news`` frame to the group (``group_send``
through the configured layer, in-memory here), which every member's consumer
then writes to its client. No heartbeat, no other namespace, no validation:
it shows what the stock consumer and layer cost with next to nothing on top,
not a usable server.
"""

import json
import os
import secrets

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.servers.settings")
get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class EchoConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        opening = {
            "sid": secrets.token_urlsafe(15),
            "upgrades": [],
            "pingInterval": 25000,
            "pingTimeout": 20000,
            "maxPayload": 1000000,
        }
        await self.send(text_data="0" + json.dumps(opening))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.close()
        elif text_data.startswith("42"):
            end = 2
            while text_data[end].isdigit():
                end += 1
            ack_id = text_data[2:end]
            event, *args = json.loads(text_data[end:])
            if event == "echo" and ack_id:
                answer = json.dumps(args, separators=(",", ":"))
                await self.send(text_data=f"43{ack_id}{answer}")
            elif event == "join" and ack_id:
                room = args[0]
                await self.channel_layer.group_add(room, self.channel_name)
                self.groups.append(room)
                await self.send(text_data=f"43{ack_id}[]")
            elif event == "fanout":
                room, *news = args
                frame = "42" + json.dumps(["news", *news], separators=(",", ":"))
                await self.channel_layer.group_send(room, {"type": "news", "text": frame})
        elif text_data.startswith("40"):
            await self.send(text_data=f'40{{"sid":"{secrets.token_urlsafe(15)}"}}')

    async def news(self, message: dict[str, str]) -> None:
        # Every member gets the frame, the sender included if it joined:
        # the sender of the benchmark is in no room.
        await self.send(text_data=message["text"])


application = ProtocolTypeRouter({"websocket": URLRouter([path("socket.io/", EchoConsumer.as_asgi())])})
