"""
The Channels consumer: one WebSocket connection, its Engine.IO transport and
its Socket.IO namespaces.

The consumer reads its ASGI ``receive()`` in a plain loop and handles each
frame in that one coroutine, rather than through ``AsyncConsumer.dispatch``:
the stock dispatch hops to a thread to close database connections before
every message and runs every message through ``asyncio.wait``, which costs
more than decoding and answering a Socket.IO event does. Listeners run in
per-socket tasks (see :mod:`rain_ws.socket`), so the loop keeps reading
pongs, acks and other namespaces' events while a listener works.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import types
from collections import deque
from collections.abc import Coroutine, Generator
from typing import Any
from urllib.parse import parse_qsl

from channels.consumer import AsyncConsumer
from django.conf import settings as django_settings
from django.http.cookie import parse_cookie

from . import protocol
from .conf import get_settings
from .heartbeat import heartbeat_for
from .idle import tracker_for
from .metrics import metrics
from .rooms import current_hub, session_hash
from .registry import registry
from .sessions import Identity, load_identity, store_worked
from .socket import QueueFull, Socket, run_sync

__all__ = ["CloseCode", "SocketIOConsumer"]

logger = logging.getLogger("rain_ws")

#: The receive loop lets other work run after this many frames in a row (a
#: server may hand over many buffered frames without ever waiting) ...
FRAMES_PER_TURN = 64
#: ... and as soon as one socket has this many events queued, so that its
#: listener keeps up with a burst instead of the queue filling to its bound.
QUEUED_PER_TURN = 32


def start_send(awaitable: Any) -> Any:
    """
    Run an ASGI ``send()`` up to its first wait. Return ``None`` if it
    finished, else an awaitable that finishes it.
    """
    if not isinstance(awaitable, Coroutine):
        return None if isinstance(awaitable, asyncio.Future) and awaitable.done() else awaitable
    try:
        waiting_on = awaitable.send(None)
    except StopIteration:
        return None
    return _finish(awaitable, waiting_on)


@types.coroutine
def _finish(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    # What ``await coroutine`` would do, from where start_send left it: hand
    # what it waits on to the awaiting task, and pass the outcome back in.
    while True:
        try:
            outcome = yield waiting_on
        except BaseException as error:
            try:
                waiting_on = coroutine.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coroutine.send(outcome)
            except StopIteration as stop:
                return stop.value


class CloseCode:
    """
    The WebSocket close codes rain_ws uses.

    RFC 6455 has codes for "message too big" (1009) and "try again later"
    (1013), but daphne lets applications close only with 1000 or 3000-4999,
    so for those two rain_ws uses 4000 plus the RFC code on servers that do
    not declare an ASGI spec version in the scope (daphne), and the RFC code
    elsewhere. Its other codes are the same on every server.
    """

    NORMAL = 1000
    PROTOCOL_ERROR = 4002
    POLICY_VIOLATION = 4008
    TOO_BIG = 4009
    TRY_AGAIN_LATER = 4013

    RFC_OFFSET = 3000
    HAS_RFC_EQUIVALENT = frozenset({TOO_BIG, TRY_AGAIN_LATER})



class SocketIOConsumer(AsyncConsumer):
    """
    Serve Socket.IO over one WebSocket connection.

    ``namespace`` restricts the connection to one channel (the per-channel
    routes); ``None`` serves every channel, multiplexed.
    """

    def __init__(self, namespace: str | None = None) -> None:
        super().__init__()
        self.only_namespace = namespace
        self.sockets: dict[str, Socket] = {}
        self.closed = False
        self.last_active = 0.0
        # Heartbeat and flow control: pings sent and answered, and for each
        # ping not yet answered, how much had been sent before it. A pong
        # proves the client read everything up to its ping.
        self.pings = 0
        self.pongs = 0
        self.sent = 0
        self.confirmed = 0
        self._ping_marks: list[int] = []  # rarely more than one: a list is smaller than a deque
        # Messages posted while the server holds an earlier send (see _post),
        # made when first needed: idle connections are many.
        self._outbox: deque[dict[str, Any]] | None = None
        self._writer: asyncio.Future[None] | None = None
        self._abandoned = False
        self._pending_binary: protocol.Packet | None = None
        self._buffers: list[bytes] = []
        self._buffered = 0  # bytes of self._buffers
        self._binary_since_ping = 0  # self.pings when the pending binary packet began
        self.awaiting_connect = False  # a CONNECT deadline is pending in the heartbeat
        self._close_reason = "transport close"
        self._backlogged = False
        self._identity: asyncio.Future[Identity] | None = None
        self._session_hash: str | None = None
        self._session_ended = False

    @property
    def namespaces_joined(self) -> bool:
        return bool(self.sockets)

    @property
    def busy(self) -> bool:
        """A listener is running or queued, or an ack is pending: never idle."""
        return any(socket.busy for socket in self.sockets.values())

    @property
    def client(self) -> str:
        client = self.scope.get("client")
        return f"{client[0]}:{client[1]}" if client else "unknown client"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        self._task = asyncio.current_task()
        # Servers that declare the ASGI spec version they implement (uvicorn,
        # hypercorn) accept every RFC close code and empty frames; daphne
        # declares none and accepts neither.
        self.server_is_standard = "spec_version" in scope.get("asgi", ())
        self.settings = settings = get_settings()
        self._probe_at = settings.MAX_UNREAD_BYTES // 2
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if query.get("EIO") != "4" or query.get("transport") != "websocket":
            logger.warning(
                "refused %s: rain_ws serves Engine.IO 4 over the WebSocket transport only "
                "(EIO=%s, transport=%s)",
                self.client,
                query.get("EIO"),
                query.get("transport"),
            )
            await send({"type": "websocket.close", "code": CloseCode.NORMAL})
            return
        await send({"type": "websocket.accept"})
        self.sid = secrets.token_urlsafe(15)
        await send(
            {
                "type": "websocket.send",
                "text": protocol.encode_open(
                    self.sid, settings.PING_INTERVAL, settings.PING_TIMEOUT, settings.MAX_PAYLOAD
                ),
            }
        )
        self.hub = current_hub()
        self.tracker = tracker = tracker_for(settings)
        self.reaping = tracker.reaping
        if not tracker.admit(self):
            # Refused after the OPEN packet, so that clients see a transport
            # that closed (and retry with their backoff), not a failed handshake.
            self.close(CloseCode.TRY_AGAIN_LATER, None)
            return
        metrics.connections += 1
        self.heartbeat = heartbeat_for(settings.PING_INTERVAL, settings.PING_TIMEOUT, settings.CONNECT_TIMEOUT)
        self.heartbeat.add(self)
        try:
            await self._receive_loop(receive)
        except asyncio.CancelledError:
            if not self._abandoned:
                self._close_reason = "server shutting down"
                raise
            self._task.uncancel()  # our own doing (see close): end normally
        finally:
            self.closed = True
            tracker.remove(self)
            metrics.connections -= 1
            if self._session_hash is not None:
                self.hub.remove_session(self._session_hash, self)
            self._end_sockets()

    async def _receive_loop(self, receive: Any) -> None:
        max_payload = self.settings.MAX_PAYLOAD
        # A str of n characters is at most 4n bytes of UTF-8: encode only when
        # the length alone cannot tell.
        char_limit = max_payload // 4
        frames = 0
        while True:
            frames += 1
            if frames == FRAMES_PER_TURN or self._backlogged:
                frames = 0
                self._backlogged = False
                await asyncio.sleep(0)
            message = await receive()
            if message["type"] != "websocket.receive":
                if message["type"] == "websocket.disconnect":
                    return
                continue
            text = message.get("text")
            if text is not None:
                if len(text) > char_limit and len(text.encode()) > max_payload:
                    self.close(CloseCode.TOO_BIG, f"frame over MAX_PAYLOAD ({max_payload} bytes)")
                    return
                if not await self._on_text(text):
                    return
            else:
                data = message.get("bytes") or b""
                if len(data) > max_payload:
                    self.close(CloseCode.TOO_BIG, f"frame over MAX_PAYLOAD ({max_payload} bytes)")
                    return
                if not await self._on_binary(data):
                    return

    # -- Engine.IO ---------------------------------------------------------

    async def _on_text(self, text: str) -> bool:
        """Handle one text frame; False ends the connection."""
        kind = text[:1]
        if kind == protocol.EIO_MESSAGE:
            if self._pending_binary is not None:
                return await self._protocol_error("text frame while binary attachments were expected")
            try:
                packet = protocol.decode_packet(text[1:])
            except protocol.ProtocolError as error:
                return await self._protocol_error(str(error))
            if packet.attachments:
                if packet.attachments > self.settings.MAX_ATTACHMENTS:
                    return await self._protocol_error(
                        f"{packet.attachments} attachments, over MAX_ATTACHMENTS "
                        f"({self.settings.MAX_ATTACHMENTS})"
                    )
                self._pending_binary = packet
                self._buffered = len(text)
                self._binary_since_ping = self.pings
                return True
            return await self._on_packet(packet, len(text))
        if kind == protocol.EIO_PONG:
            if not self._ping_marks:
                # Only an answer to a ping counts: a pong the server did not
                # ask for would claim that the client read what it never did.
                return await self._protocol_error("pong without a ping")
            self.pongs += 1
            self.confirmed = self._ping_marks.pop(0)
            return True
        if kind == protocol.EIO_CLOSE:
            self._close_reason = "client close"
            self.close(CloseCode.NORMAL, None)
            return False
        if kind == protocol.EIO_NOOP:
            return True
        return await self._protocol_error(f"unexpected Engine.IO packet {text[:10]!r}")

    async def _on_binary(self, data: bytes) -> bool:
        packet = self._pending_binary
        if packet is None:
            return await self._protocol_error("binary frame with no attachment pending")
        self._buffered += len(data)
        if self._buffered > self.settings.MAX_QUEUED_BYTES:
            self.close(
                CloseCode.TOO_BIG,
                f"binary packet over MAX_QUEUED_BYTES ({self.settings.MAX_QUEUED_BYTES} bytes)",
            )
            return False
        self._buffers.append(data)
        if len(self._buffers) < packet.attachments:
            return True
        buffers, self._buffers, self._pending_binary = self._buffers, [], None
        try:
            packet = protocol.reconstruct(packet, buffers)
        except protocol.ProtocolError as error:
            return await self._protocol_error(str(error))
        return await self._on_packet(packet, self._buffered)

    async def _protocol_error(self, reason: str) -> bool:
        self.close(CloseCode.PROTOCOL_ERROR, reason)
        return False

    # -- Socket.IO ---------------------------------------------------------

    async def _on_packet(self, packet: protocol.Packet, size: int) -> bool:
        kind = packet.type
        if self.reaping:
            self.tracker.touch(self)
        socket = self.sockets.get(packet.namespace)
        if kind == protocol.EVENT:
            if socket is None:
                await self._not_connected(packet.namespace)
            else:
                try:
                    queued = socket.receive(packet, size)
                except QueueFull as error:
                    metrics.flood_closed += 1
                    self.close(CloseCode.POLICY_VIOLATION, f"client sending faster than its listeners: {error}")
                    return False
                if queued >= QUEUED_PER_TURN:
                    self._backlogged = True
        elif kind == protocol.ACK:
            if socket is not None:
                socket.resolve_ack(packet)
        elif kind == protocol.CONNECT:
            if size > self.settings.MAX_AUTH_BYTES:
                self._refuse_namespace(
                    packet.namespace, f"CONNECT payload over MAX_AUTH_BYTES ({self.settings.MAX_AUTH_BYTES} bytes)"
                )
            else:
                await self._on_connect(packet)
        elif kind == protocol.DISCONNECT:
            if socket is not None:
                self.drop_socket(socket, "client namespace disconnect")
        else:
            return await self._protocol_error(f"clients do not send packets of type {kind}")
        return True

    async def _on_connect(self, packet: protocol.Packet) -> None:
        namespace = packet.namespace
        channel = registry.get(namespace)
        if channel is None or (self.only_namespace is not None and namespace != self.only_namespace):
            logger.info("%s asked for unknown namespace %r", self.client, namespace)
            self.send_packet(protocol.CONNECT_ERROR, namespace, {"message": "Invalid namespace"})
            return
        previous = self.sockets.get(namespace)
        if previous is not None:
            self.drop_socket(previous, "client namespace disconnect")
        socket = Socket(self, channel, self.hub.new_socket_id(), packet.data or {})
        self.sockets[namespace] = socket
        socket.start()

    def _refuse_namespace(self, namespace: str, message: str) -> None:
        logger.info("%s refused on %r: %s", self.client, namespace, message)
        self.send_packet(protocol.CONNECT_ERROR, namespace, {"message": message})

    async def _not_connected(self, namespace: str) -> None:
        logger.info("%s sent an event on %r before connecting to it", self.client, namespace)
        self.send_packet(
            protocol.CONNECT_ERROR,
            namespace,
            {"message": f"not connected to {namespace}: send CONNECT first"},
        )

    # -- used by sockets and the heartbeat --------------------------------

    def _session_key(self) -> str | None:
        """The session key of the handshake's cookie (none once that session ended)."""
        if self._session_ended:
            return None
        for name, value in self.scope.get("headers", ()):
            if name == b"cookie":
                return parse_cookie(value.decode("latin-1")).get(django_settings.SESSION_COOKIE_NAME)
        return None

    async def identity(self) -> Identity:
        """
        The connection's session and user, read once at its first CONNECT
        (without I/O when the handshake carried no session cookie).
        """
        session_key = self._session_key()
        if not session_key:
            identity = load_identity(None)
        else:
            if self._identity is None:
                self._identity = asyncio.ensure_future(run_sync(load_identity, session_key))
            try:
                # Shielded: a socket that goes away while waiting must not
                # cancel the read another namespace's CONNECT waits for too.
                identity = await asyncio.shield(self._identity)
            except Exception:
                self._identity = None  # the next CONNECT tries again
                raise
            store_worked()
        self.scope["session"] = identity.session
        self.scope["user"] = identity.user
        if identity.live and self._session_hash is None and not self.closed:
            # So that a logout anywhere reaches this connection at once.
            self._session_hash = session_hash(identity.session_key)  # type: ignore[arg-type]
            self.hub.add_session(self._session_hash, self)
        return identity

    def end_session(self) -> None:
        """
        The session has ended: tell every namespace of this connection with a
        ``session_expired`` event, then disconnect it. A later CONNECT on this
        connection is treated as having no session: its handshake's cookie
        names the ended one.
        """
        self._session_ended = True
        self._identity = None
        if self._session_hash is not None:
            self.hub.remove_session(self._session_hash, self)
            self._session_hash = None
        for socket in list(self.sockets.values()):
            if socket.connected:
                self.send_packet(protocol.EVENT, socket.channel, ["session_expired"])
                self.send_packet(protocol.DISCONNECT, socket.channel)
            self.drop_socket(socket, "session expired")

    def send_packet(self, type: int, namespace: str, data: Any = None, id: int | None = None) -> None:
        """Encode a Socket.IO packet and send its frames, in order."""
        if self.closed:
            return
        text, buffers = protocol.encode_packet(type, namespace, data, id)
        self.send_frames(text, buffers)

    def send_frames(self, text: str, buffers: list[bytes]) -> None:
        """
        Send an encoded packet: its text frame, then its binary frames.

        It never waits for the client (see :meth:`_post`); what a client has
        not read is bounded by ``MAX_UNREAD_BYTES``, past which the
        connection is closed.
        """
        if self.closed:
            return
        if buffers and not self.server_is_standard and not all(buffers):
            # daphne drops an empty binary frame, which would leave the client
            # waiting for that attachment: refuse before anything is sent.
            raise ValueError("empty bytes cannot be sent through daphne")
        if self.reaping:
            self.tracker.touch(self)
        size = len(text)  # characters: close enough to bytes for a bound
        for buffer in buffers:
            size += len(buffer)
        self.sent += size
        unread = self.sent - self.confirmed
        if unread > self.settings.MAX_UNREAD_BYTES:
            metrics.slow_closed += 1
            self.close(
                CloseCode.POLICY_VIOLATION,
                f"client not reading: {unread} bytes unread, over MAX_UNREAD_BYTES "
                f"({self.settings.MAX_UNREAD_BYTES})",
            )
            return
        if unread > self._probe_at and not self._ping_marks:
            # Ask for a pong now rather than at the next heartbeat, to learn
            # whether the client is keeping up.
            self.send_ping()
        self._post({"type": "websocket.send", "text": text})
        for buffer in buffers:
            self._post({"type": "websocket.send", "bytes": buffer})

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
            self.closed = True
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
            self.closed = True
            self._outbox.clear()  # type: ignore[union-attr]
        finally:
            self._writer = None

    def accept(self, socket: Socket) -> bool:
        """Answer a socket's CONNECT; False if it went away meanwhile."""
        if self.sockets.get(socket.channel) is not socket or self.closed:
            return False
        self.send_packet(protocol.CONNECT, socket.channel, {"sid": socket.id})
        return True

    def refuse(self, socket: Socket, message: str) -> None:
        """Refuse a socket's CONNECT with ``message``."""
        if self._forget(socket):
            self._refuse_namespace(socket.channel, message)
        socket.close("refused")

    def drop_socket(self, socket: Socket, reason: str) -> None:
        self._forget(socket)
        socket.close(reason)

    def _forget(self, socket: Socket) -> bool:
        """Take ``socket`` out of the connection's namespaces; False if it was not in."""
        if self.sockets.get(socket.channel) is not socket:
            return False
        del self.sockets[socket.channel]
        if not self.sockets and not self.closed:
            # A connection with no namespace left must connect one again
            # within CONNECT_TIMEOUT, as a new one must.
            self.heartbeat.expect_connect(self)
        return True

    def heartbeat_ping(self) -> int:
        """
        The heartbeat's ping; a binary packet whose attachments were still
        arriving at the previous one has stalled, and ends the connection.
        """
        if self._pending_binary is not None and self._binary_since_ping < self.pings:
            self.expire("binary attachments not completed within a ping interval")
            return self.pings
        return self.send_ping()

    def send_ping(self) -> int:
        """Send a ping; return its number."""
        self.pings += 1
        self._ping_marks.append(self.sent)
        if not self.closed:
            self._post({"type": "websocket.send", "text": protocol.EIO_PING})
        return self.pings

    def reap(self) -> None:
        """Disconnect an idle connection: DISCONNECT on each namespace, then close."""
        self._close_reason = "idle"
        for socket in list(self.sockets.values()):
            if socket.connected:
                self.send_packet(protocol.DISCONNECT, socket.channel)
            self.drop_socket(socket, "idle")
        self.close(CloseCode.NORMAL, None)

    def expire(self, reason: str) -> None:
        """Close the connection from the heartbeat (ping or CONNECT timeout)."""
        self._close_reason = reason
        self.close(CloseCode.POLICY_VIOLATION, reason)

    def close(self, code: int, reason: str | None) -> None:
        """Close the WebSocket, after what was sent before; ``reason`` is logged when given."""
        if self.closed:
            return
        self.closed = True
        if reason is not None:
            self._close_reason = reason
            logger.warning("closing %s (code %s): %s", self.client, code, reason)
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
            return
        if code in CloseCode.HAS_RFC_EQUIVALENT and self.server_is_standard:
            code -= CloseCode.RFC_OFFSET
        self._post({"type": "websocket.close", "code": code})

    def _end_sockets(self) -> None:
        sockets = list(self.sockets.values())
        self.sockets.clear()
        for socket in sockets:
            socket.close(self._close_reason)
