"""
The Engine.IO session: one client's connection, whatever transport carries it.

An :class:`EngineSession` owns what the Engine.IO protocol gives a
connection: its sid, its Socket.IO namespaces (one :class:`~rain_ws.socket.Socket`
each), the heartbeat, flow control (``MAX_UNREAD_BYTES``), the bounds on what
a client may make the server hold, and why the connection ended. A transport
(:mod:`rain_ws.transports`) feeds it the client's frames, in order, and
carries the frames it sends; the session never touches ASGI.

Frames are handled synchronously, from decoding to queueing an event for
its socket: nothing on that path awaits, so a frame costs no coroutine.
Whatever ends the connection goes through :meth:`EngineSession.close`.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Awaitable
from typing import Any, Protocol

from django.utils.crypto import constant_time_compare, salted_hmac

from . import protocol
from .conf import RainSettings, get_settings
from .dispatch import PAUSE_AT, QueueFull, drained, receive_event, start_socket
from .metrics import metrics
from .recovery import FINAL_REASONS
from .refusals import refusals
from .registry import registry
from .runtime import Runtime
from .sessions import ConnectionSession
from .socket import Socket

__all__ = ["CloseCode", "EngineSession", "State", "Transport", "new_sid", "sid_owner"]

logger = logging.getLogger("rain_ws")

class CloseCode:
    """
    The WebSocket close codes rain_ws uses.

    RFC 6455 has codes for "message too big" (1009), "service restart"
    (1012) and "try again later" (1013), but daphne lets applications close
    only with 1000 or 3000-4999, so for those rain_ws uses 3000 plus the RFC
    code (4009, 4012, 4013) on servers that do
    not declare an ASGI spec version in the scope (daphne), and the RFC code
    elsewhere. Its other codes are the same on every server.
    """

    NORMAL = 1000
    PROTOCOL_ERROR = 4002
    POLICY_VIOLATION = 4008
    TOO_BIG = 4009
    SERVICE_RESTART = 4012
    TRY_AGAIN_LATER = 4013

    RFC_OFFSET = 3000
    HAS_RFC_EQUIVALENT = frozenset({TOO_BIG, SERVICE_RESTART, TRY_AGAIN_LATER})


class State(enum.Enum):
    """Where a session is in its life; it only ever moves forward."""

    OPENING = "opening"  # made, not yet admitted
    OPEN = "open"
    CLOSING = "closing"  # nothing more is sent; the transport has not ended yet
    CLOSED = "closed"


# The members as module constants: looking one up on the enum class costs
# ~60 ns on Python 3.11, and these are read on every frame and event.
_OPENING = State.OPENING
_OPEN = State.OPEN
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED


class Transport(Protocol):
    """What an Engine.IO session needs from the transport under it."""

    #: "websocket" or "polling", for the metrics.
    name: str
    #: Whether an empty binary frame reaches the client (daphne drops them).
    sends_empty_bytes: bool
    #: Whether reading less makes the client send less (the server stops
    #: reading its socket while the application does not read): then the
    #: session pauses reading while a socket's backlog is long, rather than
    #: letting it grow to its bound.
    pushes_back: bool

    def send_text(self, text: str) -> None:
        """Send a text frame without waiting for the client."""

    def send_bytes(self, data: bytes) -> None:
        """Send a binary frame without waiting for the client."""

    def flushed(self) -> Awaitable[None]:
        """What to await for the frames sent so far to leave in writes of their own."""

    def close(self, code: int) -> int:
        """
        Close, after what was sent before (unless the client is not reading);
        return the close code sent (a transport may send its own equivalent).
        """


def new_sid(process_id: str) -> str:
    """
    A new session id: it names the process that holds the session, so that
    a long-polling request reaching another process finds its way there,
    and is signed, so that no made-up sid sends a request anywhere.
    """
    value = f"{process_id}.{secrets.token_urlsafe(15)}"
    return f"{value}.{_sid_signature(value)}"


def sid_owner(sid: str) -> str | None:
    """The id of the process holding session ``sid``; None for a sid rain_ws did not make."""
    value, _, signature = sid.rpartition(".")
    if not value or not constant_time_compare(signature, _sid_signature(value)):
        return None
    return value.partition(".")[0]


def _sid_signature(value: str) -> str:
    return salted_hmac("rain_ws.sid", value).hexdigest()[:16]


class CloseConnection(Exception):
    """Raised on the frame path: end the connection with ``code``, logging ``reason``."""

    def __init__(self, code: int, reason: str | None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class EngineSession:
    """
    One Engine.IO session and its Socket.IO namespaces.

    ``namespace`` restricts it to one channel (the per-channel routes);
    ``None`` serves every channel, multiplexed.
    """

    # Slots: a server holds many sessions, most of them idle.
    __slots__ = (
        "__weakref__",
        "_binary_since_ping",
        "_buffered",
        "_buffers",
        "_log_marks",
        "_pending_binary",
        "_ping_marks",
        "_probe_at",
        "awaiting_connect",
        "backlogged",
        "close_reason",
        "confirmed",
        "empty_since",
        "identity",
        "last_active",
        "only_namespace",
        "pings",
        "pongs",
        "reaping",
        "runtime",
        "scope",
        "sent",
        "settings",
        "sid",
        "sockets",
        "state",
        "transport",
    )

    def __init__(
        self, transport: Transport, scope: dict[str, Any], namespace: str | None, runtime: Runtime
    ) -> None:
        self.transport = transport
        self.scope = scope
        self.only_namespace = namespace
        self.runtime = runtime
        self.settings: RainSettings = get_settings()
        # Only a long-polling session is found by its sid again (by its later
        # requests, on any process): a WebSocket's needs no owner nor signature.
        self.sid = new_sid(runtime.bridge.process_id) if transport.name == "polling" else secrets.token_urlsafe(15)
        self.state = _OPENING
        self.sockets: dict[str, Socket] = {}
        self.identity = ConnectionSession(scope, runtime.sessions)
        self.close_reason = "transport close"
        self.last_active = 0.0
        self.reaping = runtime.tracker.reaping
        self.awaiting_connect = False
        self.empty_since = 0.0
        #: A socket whose backlog the transport should wait out before reading on.
        self.backlogged: Socket | None = None
        # Heartbeat and flow control: pings sent and answered, and for each
        # ping not yet answered, how much had been sent before it. A pong
        # proves the client read everything up to its ping.
        self.pings = 0
        self.pongs = 0
        self.sent = 0
        self.confirmed = 0
        self._ping_marks: list[int] = []  # rarely more than one: a list is smaller than a deque
        # With recovery on, for each ping not yet answered, the replay-log
        # entries made before it: its pong confirms the client read them.
        self._log_marks: list[int] | None = None if runtime.replay is None else []
        self._probe_at = self.settings.MAX_UNREAD_BYTES // 2
        # A binary packet whose attachments are still arriving.
        self._pending_binary: protocol.Packet | None = None
        self._buffers: list[bytes] | None = None
        self._buffered = 0
        self._binary_since_ping = 0

    def __repr__(self) -> str:
        return f"<EngineSession {self.sid} of {self.client}>"

    @property
    def closed(self) -> bool:
        """Whether nothing more is sent or handled."""
        return self.state is _CLOSING or self.state is _CLOSED

    @property
    def client(self) -> str:
        client = self.scope.get("client")
        return f"{client[0]}:{client[1]}" if client else "unknown client"

    @property
    def namespaces_joined(self) -> bool:
        return bool(self.sockets)

    @property
    def busy(self) -> bool:
        """A listener is running or queued, or an ack is pending: never idle."""
        return any(socket.busy for socket in self.sockets.values())

    # -- life --------------------------------------------------------------

    def open(self, upgrades: tuple[str, ...] = ()) -> bool:
        """
        Send the OPEN packet (offering ``upgrades``) and count the session
        in; False when the connection cap refuses it (it is then closed).

        A refusal comes after the OPEN packet, so that clients see a transport
        that closed (and retry with their backoff), not a failed handshake.
        """
        settings = self.settings
        self.transport.send_text(
            protocol.encode_open(
                self.sid, settings.PING_INTERVAL, settings.PING_TIMEOUT, settings.MAX_PAYLOAD, upgrades
            )
        )
        if not self.runtime.tracker.admit(self):
            self.close(CloseCode.TRY_AGAIN_LATER, None)
            return False
        self.state = _OPEN
        self.runtime.drainer.listen()
        metrics.connections += 1
        metrics.transports[self.transport.name] += 1
        self.runtime.heartbeat.add(self)
        return True

    def ended(self, reason: str | None = None) -> None:
        """
        The transport is gone (the client left, or the server is shutting
        down): end every socket with ``reason`` (else the close reason).
        """
        if reason is not None:
            self.close_reason = reason
        if self.state is _OPEN or self.state is _CLOSING:
            self.runtime.tracker.remove(self)
            metrics.connections -= 1
            metrics.transports[self.transport.name] -= 1
        self.state = _CLOSED
        sockets = list(self.sockets.values())
        self.sockets.clear()
        for socket in sockets:
            self._close_socket(socket, self.close_reason)
        self.identity.close(self)

    def upgrade(self, transport: Transport, unsent: list[str | bytes]) -> None:
        """
        Carry the session on ``transport`` from now on (the upgrade from
        long-polling to WebSocket), sending first what the old transport had
        not delivered yet (``unsent``).
        """
        if self.state is _OPEN or self.state is _CLOSING:
            metrics.transports[self.transport.name] -= 1
            metrics.transports[transport.name] += 1
        self.transport = transport
        for packet in unsent:
            if isinstance(packet, bytes):
                transport.send_bytes(packet)
            else:
                transport.send_text(packet)

    def lost(self) -> None:
        """The transport can no longer send: the client went away. Nothing more is sent."""
        if self.state is _OPEN:
            self.state = _CLOSING

    def close(self, code: int, reason: str | None) -> None:
        """Close the connection, after what was sent before; ``reason`` is logged when given."""
        if self.closed:
            return
        self.state = _CLOSING if self.state is _OPEN else _CLOSED
        if reason is not None:
            self.close_reason = reason
        sent = self.transport.close(code)
        if reason is not None:
            logger.warning("closing %s (code %s): %s", self.client, sent, reason)

    def drain(self) -> None:
        """Close for a drain: "service restart", on which clients reconnect (to another process)."""
        self.close_reason = "server draining"
        self.close(CloseCode.SERVICE_RESTART, None)

    def expire(self, reason: str) -> None:
        """Close the connection from the heartbeat (ping or CONNECT timeout)."""
        self.close(CloseCode.POLICY_VIOLATION, reason)

    def reap(self) -> None:
        """Disconnect an idle connection: DISCONNECT on each namespace, then close."""
        self.close_reason = "idle"
        for socket in list(self.sockets.values()):
            self.disconnect_socket(socket, "idle")
        self.close(CloseCode.NORMAL, None)

    # -- input: the client's frames ----------------------------------------

    async def wait_backlog(self) -> None:
        """Wait until the socket whose backlog paused reading has worked through half of it."""
        socket, self.backlogged = self.backlogged, None
        if socket is not None:
            await drained(socket)

    def receive_text(self, text: str) -> None:
        """Handle one text frame (one Engine.IO packet)."""
        try:
            kind = text[:1]
            if kind == protocol.EIO_MESSAGE:
                self._on_message(text)
            elif kind == protocol.EIO_PONG:
                self._on_pong()
            elif kind == protocol.EIO_CLOSE:
                self.close_reason = "client close"
                self.close(CloseCode.NORMAL, None)
            elif kind != protocol.EIO_NOOP:
                raise CloseConnection(CloseCode.PROTOCOL_ERROR, f"unexpected Engine.IO packet {text[:10]!r}")
        except CloseConnection as end:
            self.close(end.code, end.reason)

    def receive_binary(self, data: bytes) -> None:
        """Handle one binary frame: an attachment of the binary packet announced before it."""
        try:
            self._on_attachment(data)
        except CloseConnection as end:
            self.close(end.code, end.reason)

    def _on_message(self, text: str) -> None:
        if self._pending_binary is not None:
            raise CloseConnection(CloseCode.PROTOCOL_ERROR, "text frame while binary attachments were expected")
        try:
            packet = protocol.decode_packet(text[1:])
        except protocol.ProtocolError as error:
            raise CloseConnection(CloseCode.PROTOCOL_ERROR, str(error)) from None
        if packet.attachments:
            limit = self.settings.MAX_ATTACHMENTS
            if packet.attachments > limit:
                raise CloseConnection(
                    CloseCode.PROTOCOL_ERROR, f"{packet.attachments} attachments, over MAX_ATTACHMENTS ({limit})"
                )
            self._pending_binary = packet
            self._buffers = []
            self._buffered = len(text)
            self._binary_since_ping = self.pings
            return
        # Sizes are counted in characters (close enough to bytes for a
        # bound), but a CONNECT's in bytes: its payload is kept for the
        # socket's life, and CONNECTs are few.
        self._on_packet(packet, len(text.encode()) if packet.type == protocol.CONNECT else len(text))

    def _on_pong(self) -> None:
        if not self._ping_marks:
            # Only an answer to a ping counts: a pong the server did not ask
            # for would claim that the client read what it never did.
            raise CloseConnection(CloseCode.PROTOCOL_ERROR, "pong without a ping")
        self.pongs += 1
        self.confirmed = self._ping_marks.pop(0)
        if self._log_marks is not None:
            seq = self._log_marks.pop(0)
            for socket in self.sockets.values():
                log = socket._log
                if log is not None and log.entries:
                    log.confirm(seq)

    def _on_attachment(self, data: bytes) -> None:
        packet = self._pending_binary
        if packet is None:
            raise CloseConnection(CloseCode.PROTOCOL_ERROR, "binary frame with no attachment pending")
        self._buffered += len(data)
        limit = self.settings.MAX_QUEUED_BYTES
        if self._buffered > limit:
            raise CloseConnection(CloseCode.TOO_BIG, f"binary packet over MAX_QUEUED_BYTES ({limit} bytes)")
        buffers = self._buffers
        assert buffers is not None  # made with the pending packet
        buffers.append(data)
        if len(buffers) < packet.attachments:
            return
        self._buffers = self._pending_binary = None
        try:
            packet = protocol.reconstruct(packet, buffers)
        except protocol.ProtocolError as error:
            raise CloseConnection(CloseCode.PROTOCOL_ERROR, str(error)) from None
        self._on_packet(packet, self._buffered)

    def _on_packet(self, packet: protocol.Packet, size: int) -> None:
        kind = packet.type
        if self.reaping:
            self.runtime.tracker.touch(self)
        socket = self.sockets.get(packet.namespace)
        if kind == protocol.EVENT:
            if socket is None:
                self._refuse_namespace(
                    packet.namespace, "not_connected", f"not connected to {packet.namespace}: send CONNECT first"
                )
                return
            try:
                queued = receive_event(socket, packet, size)
            except QueueFull as error:
                metrics.flood_closed += 1
                raise CloseConnection(
                    CloseCode.POLICY_VIOLATION, f"client sending faster than its listeners: {error}"
                ) from None
            if queued >= PAUSE_AT and self.transport.pushes_back:
                self.backlogged = socket
        elif kind == protocol.ACK:
            if socket is not None:
                socket.resolve_ack(packet)
        elif kind == protocol.CONNECT:
            self._on_connect(packet, size)
        elif kind == protocol.DISCONNECT:
            if socket is not None:
                self.drop_socket(socket, "client namespace disconnect")
        else:
            raise CloseConnection(CloseCode.PROTOCOL_ERROR, f"clients do not send packets of type {kind}")

    def _on_connect(self, packet: protocol.Packet, size: int) -> None:
        namespace = packet.namespace
        channel = registry.get(namespace)
        if channel is None or (self.only_namespace is not None and namespace != self.only_namespace):
            # Word for word what Socket.IO servers send, without a code: the
            # official protocol suite checks this packet byte for byte.
            self._refuse_namespace(namespace, None, "Invalid namespace")
            return
        limit = self.settings.MAX_AUTH_BYTES
        if size > limit:
            self._refuse_namespace(namespace, "auth_too_large", f"CONNECT payload over MAX_AUTH_BYTES ({limit} bytes)")
            return
        previous = self.sockets.get(namespace)
        if previous is not None:
            self.drop_socket(previous, "client namespace disconnect")
        socket = Socket(self, channel, self.runtime.rooms, packet.data or {})
        self.sockets[namespace] = socket
        start_socket(socket)

    # -- output --------------------------------------------------------------

    def send_packet(self, type: int, namespace: str, data: Any = None, id: int | None = None) -> None:
        """Encode a Socket.IO packet and send its frames, in order."""
        if self.state is not _OPEN:
            return
        text, buffers = protocol.encode_packet(type, namespace, data, id)
        self.send_frames(text, buffers)

    def send_frames(self, text: str, buffers: list[bytes]) -> None:
        """
        Send an encoded packet: its text frame, then its binary frames.

        It never waits for the client; what a client has not confirmed
        reading is bounded by ``MAX_UNREAD_BYTES``, past which the connection
        is closed.
        """
        if self.state is not _OPEN:
            return
        transport = self.transport
        if buffers and not transport.sends_empty_bytes and not all(buffers):
            # The transport would drop an empty binary frame and leave the
            # client waiting for that attachment: refuse before anything is sent.
            raise ValueError("empty bytes cannot be sent through daphne")
        if self.reaping:
            self.runtime.tracker.touch(self)
        size = len(text)  # characters: close enough to bytes for a bound
        for buffer in buffers:
            size += len(buffer)
        self.sent += size
        unread = self.sent - self.confirmed
        limit = self.settings.MAX_UNREAD_BYTES
        if unread > limit:
            metrics.slow_closed += 1
            self.close(
                CloseCode.POLICY_VIOLATION,
                f"client not reading: {unread} bytes unread, over MAX_UNREAD_BYTES ({limit})",
            )
            return
        if unread > self._probe_at and not self._ping_marks:
            # Ask for a pong now rather than at the next heartbeat, to learn
            # whether the client is keeping up.
            self.send_ping()
        transport.send_text(text)
        for buffer in buffers:
            transport.send_bytes(buffer)

    def send_ping(self) -> int:
        """Send a ping; return its number."""
        self.pings += 1
        self._ping_marks.append(self.sent)
        if self._log_marks is not None:
            self._log_marks.append(self.runtime.replay.seq)  # type: ignore[union-attr]
        if self.state is _OPEN:
            self.transport.send_text(protocol.EIO_PING)
        return self.pings

    def heartbeat_ping(self) -> int:
        """
        The heartbeat's ping; a binary packet whose attachments were still
        arriving at the previous one has stalled, and ends the connection.
        """
        if self._pending_binary is not None and self._binary_since_ping < self.pings:
            self.expire("binary attachments not completed within a ping interval")
            return self.pings
        return self.send_ping()

    # -- namespaces, for sockets --------------------------------------------

    async def restore(self, socket: Socket) -> bool:
        """
        Recover the socket its CONNECT's ``pid`` names (with its id, rooms
        and missed events), when the channel keeps replay logs; True if it was.
        """
        recovery = self.runtime.recovery
        if recovery is None or socket._log is None:
            return False
        return await recovery.restore(socket, self.identity.key_hash)

    def accept(self, socket: Socket) -> bool:
        """Answer a socket's CONNECT; False if it went away meanwhile."""
        if self.sockets.get(socket.channel) is not socket or self.state is not _OPEN:
            return False
        reply = {"sid": socket.id} if socket._pid is None else {"sid": socket.id, "pid": socket._pid}
        self.send_packet(protocol.CONNECT, socket.channel, reply)
        return True

    def flushed(self) -> Awaitable[None]:
        """
        What to await before the channel's handlers run, so that the CONNECT
        reply and their first emits reach the client in separate reads.
        """
        return self.transport.flushed()

    def refuse(self, socket: Socket, code: str, message: str) -> None:
        """Refuse a socket's CONNECT with a CONNECT_ERROR carrying ``code`` and ``message``."""
        if self._forget(socket):
            self._refuse_namespace(socket.channel, code, message)
        socket.close("refused")

    def _refuse_namespace(self, namespace: str, code: str | None, message: str) -> None:
        refusals.refused("refused %s on %s: %s", self.client, namespace, message)
        refusal: dict[str, Any] = {"message": message}
        if code is not None:
            refusal["data"] = {"code": code}
        self.send_packet(protocol.CONNECT_ERROR, namespace, refusal)

    def disconnect_socket(self, socket: Socket, reason: str) -> None:
        """Disconnect a socket from the server side: DISCONNECT to the client, then drop it."""
        if socket.connected:
            self.send_packet(protocol.DISCONNECT, socket.channel)
        self.drop_socket(socket, reason)

    def drop_socket(self, socket: Socket, reason: str) -> None:
        """Forget a socket and close it with ``reason``."""
        self._forget(socket)
        self._close_socket(socket, reason)

    def _close_socket(self, socket: Socket, reason: str) -> None:
        """Close a socket; one that is recoverable and did not go for good leaves a stand-in."""
        recovery = self.runtime.recovery
        if recovery is not None and socket._pid is not None and socket.connected and reason not in FINAL_REASONS:
            recovery.detach(socket, self.identity.key_hash)
        socket.close(reason)

    def _forget(self, socket: Socket) -> bool:
        """Take ``socket`` out of the session's namespaces; False if it was not in."""
        if self.sockets.get(socket.channel) is not socket:
            return False
        del self.sockets[socket.channel]
        if not self.sockets and self.state is _OPEN:
            # A connection with no namespace left must connect one again
            # within CONNECT_TIMEOUT, as a new one must.
            self.runtime.heartbeat.expect_connect(self)
        return True

    def end_session(self) -> None:
        """
        The Django session has ended: tell every namespace with a
        ``session_expired`` event, then disconnect it. A later CONNECT on
        this connection is treated as having no session.
        """
        self.identity.end(self)
        for socket in list(self.sockets.values()):
            if socket.connected:
                self.send_packet(protocol.EVENT, socket.channel, ["session_expired"])
            self.disconnect_socket(socket, "session expired")
