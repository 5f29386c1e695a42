"""
The WebSocket transport: a consumer (an ASGI application, routable as a
Channels consumer is) that carries one Engine.IO session over one WebSocket
connection.

The consumer reads its ASGI ``receive()`` in a plain loop and hands each
frame to the session in that one coroutine, rather than through
``AsyncConsumer.dispatch``: the stock dispatch hops to a thread to close
database connections before every message and runs every message through
``asyncio.wait``, which costs more than decoding and answering a Socket.IO
event does. Listeners run in per-socket tasks (see :mod:`rain_ws.dispatch`),
so the loop keeps reading pongs, acks and other namespaces' events while a
listener works.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, WebSocketScope

from .. import protocol
from ..aio import start_send
from ..engine import CloseCode, EngineSession, State, sid_owner
from ..layer import DONE
from ..refusals import refusals
from ..runtime import runtime
from .relay import relay_frames

__all__ = ["SocketIOConsumer"]

logger = logging.getLogger("rain_ws")

# Module constants: cheaper than the enum's attributes on Python 3.11.
_OPENING = State.OPENING
_OPEN = State.OPEN

#: Seconds daphne is given to write the CONNECT reply before the handlers' first emits (see ``flushed``).
DAPHNE_FLUSH_DELAY = 0.001

class SocketIOConsumer:
    """
    Serve Socket.IO over one WebSocket connection.

    ``namespace`` restricts the connection to one channel (the per-channel
    routes); ``None`` serves every channel, multiplexed.

    It is not a Channels ``AsyncConsumer``: it uses none of that class's
    machinery (its dispatch, its channel-layer hookup), and a class without
    an instance dict keeps idle connections smaller. :meth:`as_asgi` makes
    it routable as a consumer is.
    """

    name = "websocket"

    # Slots: a server holds many connections, most of them idle.
    __slots__ = (
        "_abandoned",
        "_outbox",
        "_rfc_codes",
        "_task",
        "_writer",
        "base_send",
        "only_namespace",
        "pushes_back",
        "scope",
        "sends_empty_bytes",
        "session",
    )

    def __init__(self, namespace: str | None = None) -> None:
        self.only_namespace = namespace
        self.session: EngineSession | None = None
        # Messages posted while the server holds an earlier send (see _post),
        # made when first needed: idle connections are many.
        self._outbox: deque[dict[str, Any]] | None = None
        self._writer: asyncio.Future[None] | None = None
        self._abandoned = False

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> Callable[[WebSocketScope, ASGIReceiveCallable, ASGISendCallable], Any]:
        """
        An ASGI application that serves each connection with a new consumer
        made with ``initkwargs``, as Channels' ``as_asgi()`` does.
        """

        def app(scope: WebSocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> Awaitable[None]:
            return cls(**initkwargs)(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        functools.update_wrapper(app, cls, updated=())
        return app

    def __call__(self, scope: WebSocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> Awaitable[None]:
        self.scope = scope
        self.base_send = send
        # Servers that declare the ASGI spec version they implement (uvicorn,
        # hypercorn) accept every RFC close code and empty frames, and stop
        # reading a client's socket while the application does not read its
        # frames; daphne declares none and does none of these.
        self.sends_empty_bytes = self.pushes_back = self._rfc_codes = "spec_version" in scope.get("asgi", ())
        return self._serve(receive, send)

    async def _serve(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        """
        Serve the connection: the handshake, then the client's frames until
        it goes. The handshake runs in a coroutine of its own, which ends;
        the frames are read here, so that one coroutine, not two, stays alive
        for as long as the connection.
        """
        self._task = asyncio.current_task()
        session = await self._handshake(receive, send)
        if session is None:
            return
        try:
            if session.state is _OPENING and not session.open():  # an upgraded session is open already
                return
            max_payload = session.settings.MAX_PAYLOAD
            # A str of n characters is at most 4n bytes of UTF-8: encode only when
            # the length alone cannot tell.
            char_limit = max_payload // 4
            # Frames are taken as the server has them, without yielding in
            # between. On a server that stops reading its socket while the
            # application does not read (uvicorn), the loop stops reading while a
            # socket's backlog is long, and TCP makes the client wait. Daphne
            # reads whatever arrives into a queue of its own, without limit: there
            # every frame is taken at once, so that events count against
            # MAX_QUEUED_EVENTS and MAX_QUEUED_BYTES rather than pile up in it.
            while True:
                if session.backlogged is not None:
                    await session.wait_backlog()
                message = await receive()
                if message["type"] != "websocket.receive":
                    if message["type"] == "websocket.disconnect":
                        return
                    continue
                text = message.get("text")
                if text is not None:
                    if len(text) > char_limit and len(text.encode()) > max_payload:
                        session.close(CloseCode.TOO_BIG, f"frame over MAX_PAYLOAD ({max_payload} bytes)")
                        return
                    session.receive_text(text)
                else:
                    data = message.get("bytes") or b""
                    if len(data) > max_payload:
                        session.close(CloseCode.TOO_BIG, f"frame over MAX_PAYLOAD ({max_payload} bytes)")
                        return
                    session.receive_binary(data)
                if session.state is not _OPEN:
                    return
                # Hold nothing of this frame while waiting for the next: an
                # idle connection would otherwise keep its last frame (up to
                # MAX_PAYLOAD) alive for as long as it stays idle.
                message = text = data = None
        except asyncio.CancelledError:
            if not self._abandoned:
                session.ended("server shutting down")
                raise
            self._task.uncancel()  # our own doing (see close): end normally
        finally:
            session.ended()
            self.session = None  # no cycle left between the session and its transport

    async def _handshake(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> EngineSession | None:
        """
        Accept the WebSocket and return its Engine.IO session: a new one, or
        the long-polling session it upgrades; None when the connection was
        refused, or relayed to the process holding its session.
        """
        scope = self.scope
        message = await receive()
        if message["type"] != "websocket.connect":
            return None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if query.get("EIO") != "4" or query.get("transport") != "websocket":
            client = scope.get("client")
            refusals.refused(
                "refused %s: a WebSocket needs EIO=4&transport=websocket (EIO=%s, transport=%s)",
                f"{client[0]}:{client[1]}" if client else "unknown client",
                query.get("EIO"),
                query.get("transport"),
            )
            await send({"type": "websocket.close", "code": CloseCode.NORMAL})
            return None
        if runtime().drainer.draining:
            # Refused at the handshake: the client retries with its backoff,
            # through the load balancer to another process.
            refusals.refused("refused a WebSocket: this process is draining")
            await send({"type": "websocket.close", "code": CloseCode.NORMAL})
            return None
        try:
            await send({"type": "websocket.accept"})
        except Exception:
            return None  # the client left during the handshake
        sid = query.get("sid")
        if sid is None:
            self.session = EngineSession(self, scope, self.only_namespace, runtime())
            return self.session
        if self._held_elsewhere(sid):
            owner = sid_owner(sid)
            assert owner is not None  # _held_elsewhere checked it
            await relay_frames(runtime(), self, receive, sid, owner, self.sends_empty_bytes)
            self._post({"type": "websocket.close", "code": CloseCode.NORMAL})
            return None
        self.session = await self._take_over(receive, sid)
        if self.session is None:
            await send({"type": "websocket.close", "code": CloseCode.NORMAL})
        return self.session

    @staticmethod
    def _held_elsewhere(sid: str) -> bool:
        """Whether session ``sid`` is held by another process (its WebSocket is then relayed there)."""
        owner = sid_owner(sid)
        process = runtime()
        return owner is not None and owner != process.bridge.process_id and process.bridge.enabled

    async def _take_over(self, receive: ASGIReceiveCallable, sid: str) -> EngineSession | None:
        """
        The upgrade of the long-polling session ``sid`` to this WebSocket:
        the client probes (``2probe``, answered ``3probe``), then says
        ``5``; the session is then this transport's. None when there is no
        such session in this process (it may live in another: the client
        then stays on long-polling), or the client does not complete it.
        """
        polling = runtime().polling.get(sid)
        if polling is None or polling.session is None:
            return None
        wait = polling.session.settings.PING_TIMEOUT
        try:
            probe = await asyncio.wait_for(receive(), wait)
            if probe.get("text") != protocol.EIO_PING + "probe":
                return None
            self.send_text(protocol.EIO_PONG + "probe")
            polling.probed()
            upgrade = await asyncio.wait_for(receive(), wait)
        except TimeoutError:
            return None
        if upgrade.get("text") != protocol.EIO_UPGRADE:
            return None
        session = polling.session
        return session if polling.upgrade_to(self) else None

    # -- the session's transport -------------------------------------------

    def send_text(self, text: str) -> None:
        self._post({"type": "websocket.send", "text": text})

    def send_bytes(self, data: bytes) -> None:
        self._post({"type": "websocket.send", "bytes": data})

    def flushed(self) -> Awaitable[None]:
        """
        Wait until what was sent so far has left in a write of its own.

        uvicorn writes each frame to the socket at once. Daphne (Twisted)
        gathers what is sent within a turn of the event loop into one write,
        so the CONNECT reply and a handler's first emit would reach the
        client in one TCP read; a client that takes frames with a one-shot
        listener then loses the second (the official protocol suite's `ws`
        client, up to ws 8.13 and from 8.17). A millisecond lets Twisted
        write first; it delays the handlers, not the event loop.
        """
        if self._rfc_codes:
            return DONE
        return asyncio.sleep(DAPHNE_FLUSH_DELAY)

    def close(self, code: int) -> int:
        """Close the WebSocket, after what was sent before; return the code sent."""
        if code in CloseCode.HAS_RFC_EQUIVALENT and self._rfc_codes:
            code -= CloseCode.RFC_OFFSET
        if self._writer is not None:
            # The server still holds an earlier send: the client is not
            # reading, and a close frame would wait behind it for good. Drop
            # what is queued and end this consumer; the server then closes
            # the transport.
            self._outbox.clear()  # type: ignore[union-attr]
            self._writer.cancel()
            if self._task is not asyncio.current_task():
                self._abandoned = True
                self._task.cancel()
            return code
        self._post({"type": "websocket.close", "code": code})
        return code

    def _post(self, message: dict[str, Any]) -> None:
        """
        Hand ``message`` to the server without waiting for it.

        Servers buffer what they send, so ``send()`` nearly always finishes
        at once; only a client that is not reading makes it wait (uvicorn
        holds sends while the socket's buffer is full). The send is run here
        up to its first wait: when it has one, a writer task finishes it and
        sends, in order, whatever is posted meanwhile. No sender (a listener,
        a room broadcast, the heartbeat) ever waits on one slow client, and
        no task is made per frame.
        """
        if self._writer is not None:
            self._outbox.append(message)  # type: ignore[union-attr]
            return
        try:
            rest = start_send(self.base_send(message))
        except Exception:
            # The client went away: uvicorn raises ClientDisconnected (an
            # OSError), daphne autobahn's Disconnected (a RuntimeError). The
            # receive loop gets websocket.disconnect next; whoever sent must
            # not fail because of it (a room emit to many sockets, an ack).
            self._lost()
            return
        if rest is not None:
            if self._outbox is None:
                self._outbox = deque()
            self._writer = asyncio.ensure_future(self._write(rest))

    async def _write(self, rest: Any) -> None:
        try:
            await rest
            outbox = self._outbox
            while outbox:
                await self.base_send(outbox.popleft())
        except (Exception, asyncio.CancelledError):
            # The client went away, or close() gave it up.
            self._outbox.clear()  # type: ignore[union-attr]
            self._lost()
        finally:
            self._writer = None

    def _lost(self) -> None:
        if self.session is not None:
            self.session.lost()
