channel = "no-socket"


async def handle():  # rain_ws.E011: no socket parameter
    pass
