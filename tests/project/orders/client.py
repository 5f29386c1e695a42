"""A program following /orders/1.0/updates with its API token (python-socketio)."""

import asyncio
import os

import socketio

SERVER = os.environ.get("SERVER_URL", "http://127.0.0.1:8000")
CHANNEL = "/orders/1.0/updates"


async def main():
    sio = socketio.AsyncClient()

    @sio.on("welcome", namespace=CHANNEL)
    async def welcome(data):
        print("connected as", data["username"])

    @sio.on("connect_error", namespace=CHANNEL)
    async def refused(error):
        print("refused:", error["message"], error.get("data", {}).get("code"))

    try:
        await sio.connect(
            SERVER,
            namespaces=[CHANNEL],
            transports=["websocket"],  # rain_ws serves no HTTP long-polling
            auth={"token": os.environ["ORDERS_TOKEN"]},
        )
    except socketio.exceptions.ConnectionError:
        return
    print("whoami:", await sio.call("whoami", namespace=CHANNEL))
    print("cancel:", await sio.call("cancel", 42, namespace=CHANNEL))
    await sio.disconnect()


asyncio.run(main())
