channel = 5  # rain_ws.E012


async def handle(socket):
    pass
