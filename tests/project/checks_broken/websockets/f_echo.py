channel = "echo"  # also served by the echo app: /echo/2.0/echo


async def handle(socket):
    pass
