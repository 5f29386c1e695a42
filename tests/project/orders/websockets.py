"""Order updates for programs that send an API token instead of a session cookie."""

from django.contrib.auth import get_user_model

import rain_ws

from .tokens import read_token

channel = "updates"  # the namespace /orders/1.0/updates
require_session = False  # programs have no session cookie: authorize() checks the token


async def authorize(socket):
    token = socket.auth.get("token")  # the client's CONNECT payload, {} if it sent none
    if not isinstance(token, str):
        raise rain_ws.RainError("send your API token as auth.token", "token_required")
    claims = read_token(token)  # raises RainError("invalid token", "invalid_token")...
    user = await get_user_model().objects.filter(pk=claims["user"], is_active=True).afirst()
    if user is None:
        raise rain_ws.RainError("this token's user is gone", "invalid_token")
    # What the listeners need to know about the client, for the socket's life.
    socket.data["user"] = user
    socket.data["scopes"] = claims["scopes"]
    return True


async def handle(socket):
    user = socket.data["user"]
    await socket.join(f"user:{user.pk}")  # rain_ws.broadcast(..., room=f"user:{pk}") reaches the user's programs
    await socket.emit("welcome", {"username": user.get_username()})

    @socket.on("whoami")
    async def whoami():
        return {"username": user.get_username(), "scopes": socket.data["scopes"]}

    @socket.on("cancel")
    async def cancel(order_id):
        if "orders:write" not in socket.data["scopes"]:
            raise rain_ws.RainError("this token may only read orders", "forbidden")
        return {"cancelled": order_id}
