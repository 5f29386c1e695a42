"""The channels the browser tests drive rain.js against."""

import rain_ws

# /browser/1.0/chat: the channel of the RAIN documentation's controller example.
channel = "chat"


async def handle(socket):
    await socket.emit("hello", {"message": "Hello from the chat channel"})

    @socket.on("new-message")
    async def new_message(data):
        await socket.emit("hello", {"message": "You said: " + data["text"]})


#: How many times each key was counted, over every connection of this process:
#: a test can tell an event delivered once from one delivered twice.
counts: dict[str, int] = {}


@rain_ws.channel("counter", use_session=True)
async def counter(socket):
    @socket.on("count")
    async def count(key):
        counts[key] = counts.get(key, 0) + 1
        return counts[key]

    @socket.on("peek")
    async def peek(key):
        return counts.get(key, 0)

    @socket.on("reverse")
    async def reverse(data):
        await socket.emit("reversed", data[::-1])
        return data[::-1]

    @socket.on("bye")
    async def bye():
        await socket.disconnect()
