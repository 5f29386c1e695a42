channel = "guarded"


async def handle(socket):
    pass


async def authorize(socket, request):  # rain_ws.E014: called as authorize(socket)
    return True
