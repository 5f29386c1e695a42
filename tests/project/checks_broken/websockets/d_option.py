channel = "options"
use_session = "yes"  # rain_ws.E015


async def handle(socket):
    pass
