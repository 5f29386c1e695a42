"""A component that keeps its state in the Django session."""

import rain_ws

channel = "memo"
use_session = True


async def handle(socket):
    await socket.emit("info", {"count": len(socket.session.get("memos", [])), "user": str(socket.user)})

    @socket.on("save")
    async def save(memo):
        memos = socket.session.get("memos", [])
        socket.session["memos"] = memos + [memo]
        return {"count": len(memos) + 1}

    @socket.on("read")
    async def read(key):
        return socket.session.get(key)

    @socket.on("write")
    def write(key, value):
        socket.session[key] = value
        return True

    @socket.on("write-set")
    async def write_set(key):
        socket.session[key] = {1, 2}
        socket.session["also"] = "not saved either"
        return True

    @socket.on("write-then-fail")
    async def write_then_fail(key, value):
        socket.session[key] = value
        raise rain_ws.RainError("changed my mind", "refused")

    @socket.on("append-in-place")
    async def append_in_place(key, item):
        socket.session[key].append(item)  # not seen by itself...
        socket.session.modified = True  # ...so every key is saved
        return True

    @socket.on("forget")
    async def forget(key):
        del socket.session[key]
        return True


@rain_ws.channel("private", login_required=True)
async def private(socket):
    await socket.emit("welcome", socket.user.get_username())


@rain_ws.channel("snapshot", use_session=False)
async def snapshot(socket):
    @socket.on("read")
    async def read(key):
        return socket.session.get(key)

    @socket.on("write")
    async def write(key, value):
        socket.session[key] = value
        return True
