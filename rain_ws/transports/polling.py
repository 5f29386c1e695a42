"""
The HTTP long-polling transport: Engine.IO sessions carried by GET and POST
requests, answered by whichever process the request reaches.

A handshake (a GET without ``sid``) makes the session in the process that
serves it, its owner. The session's sid starts with the owner's process id,
and every process reads the channel-layer group of its own id, so a later
GET or POST that reaches another process is relayed to the owner through
the channel layer and its answer relayed back: no sticky sessions. With one
process, or a request that reaches the owner, there is no relay.

A GET is answered with what the session has sent since the last one, or
waits until there is something: the heartbeat's ping comes every
``PING_INTERVAL``, so a GET never waits longer. A POST carries the client's
packets. The upgrade to WebSocket (a WebSocket handshake with the ``sid``,
then ``2probe``, ``3probe`` and ``5``) is done by
:mod:`rain_ws.transports.websocket` with :meth:`PollingTransport.upgrade_to`
on the owner, or relayed to the owner by :mod:`rain_ws.transports.relay`
when the WebSocket reaches another process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable
from typing import Any

from .. import protocol
from ..engine import CloseCode, EngineSession, State, Transport, sid_owner
from ..layer import DONE, process_group
from ..refusals import refusals
from ..runtime import Runtime
from . import relay

__all__ = ["PollingTransport", "Response", "handle", "refuse_too_big"]

logger = logging.getLogger("rain_ws")

#: An answer: HTTP status, body, content type.
Response = tuple[int, str, str]

_TEXT = "text/plain; charset=UTF-8"
_JSON = "application/json"

#: Engine.IO's error codes, with their messages.
UNKNOWN_TRANSPORT = (0, "Transport unknown")
UNKNOWN_SID = (1, "Session ID unknown")
BAD_HANDSHAKE_METHOD = (2, "Bad handshake method")
BAD_REQUEST = (3, "Bad request")
UNSUPPORTED_VERSION = (5, "Unsupported protocol version")
DRAINING = (3, "Server draining: try another")

#: The layer messages of the relay.
RELAY = "rain_ws.poll"
RELAY_ANSWER = "rain_ws.poll.answer"
#: Seconds a relayed request waits for the owner to say it has it: past
#: that, the owner is taken for gone and the client told to start again.
OWNER_WAIT = 2.0
#: Seconds a relayed POST waits for the owner's answer (a GET waits a ping interval more).
RELAY_WAIT = 5.0

#: Seconds a GET that arrives after the upgrade's probe waits (see ``get``).
PROBE_WAIT = 0.1

_OPEN = State.OPEN


def error(code_and_message: tuple[int, str], status: int = 400) -> Response:
    code, message = code_and_message
    return status, json.dumps({"code": code, "message": message}), _JSON


class PollingTransport:
    """The output of one session, kept until the client's next GET takes it."""

    name = "polling"
    sends_empty_bytes = True
    #: A POST's answer waits while a socket's backlog is long: the client
    #: sends its next POST only after it.
    pushes_back = True

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.session: EngineSession | None = None
        self._out: list[str | bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._posting = False
        self._closing = False
        self._probed = False
        self._upgraded = False

    # -- the session's transport -------------------------------------------

    def send_text(self, text: str) -> None:
        self._out.append(text)
        self._wake()

    def send_bytes(self, data: bytes) -> None:
        self._out.append(data)
        self._wake()

    def flushed(self) -> Awaitable[None]:
        return DONE  # a GET takes the packets as they are, one packet each

    def close(self, code: int) -> int:
        """
        The session is closing: a GET waiting now gets what is left (or a
        noop), else the next GET within ``PING_TIMEOUT`` does, unless the
        client is gone (a ping timeout); then the session is forgotten.
        """
        if self._closing:
            return code
        self._closing = True
        session = self.session
        assert session is not None
        if session.close_reason != "client close":
            self._out.append(protocol.EIO_CLOSE)  # the client learns it is over at its next GET
        if self._waiter is not None:
            self._wake()
        elif session.close_reason == "ping timeout":
            self._forget()
        else:
            self.runtime.loop.call_later(session.settings.PING_TIMEOUT, self._forget)
        return code

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _forget(self) -> None:
        session = self.session
        if session is not None and self.runtime.polling.get(session.sid) is self:
            del self.runtime.polling[session.sid]
            session.ended()

    # -- requests ------------------------------------------------------------

    async def get(self) -> Response:
        """The packets sent since the last GET, waiting for one if there are none."""
        if self._upgraded:
            return error(BAD_REQUEST)
        if self._waiter is not None:
            # Two GETs at once: the client is broken, or two clients share a sid.
            self._close_with(CloseCode.PROTOCOL_ERROR, "two long-polling GETs at once")
            return error(BAD_REQUEST)
        if not self._out and not self._closing:
            # A client that was answered 3probe stops polling until the
            # upgrade is done, but its GET may cross the probe: a GET after
            # the probe waits PROBE_WAIT at most, and is answered 400 if the
            # upgrade happened meanwhile, else a noop, so that the client
            # goes on to send its upgrade.
            after_probe = self._probed
            self._waiter = self.runtime.loop.create_future()
            try:
                if after_probe:
                    await asyncio.wait((self._waiter,), timeout=PROBE_WAIT)
                else:
                    await self._waiter
            finally:
                self._waiter = None
            if self._upgraded and after_probe:
                return error(BAD_REQUEST)
        packets, self._out = self._out, []
        if self._closing:
            self._forget()
        return 200, protocol.encode_payload(packets) if packets else protocol.EIO_NOOP, _TEXT

    def would_wait(self) -> bool:
        """Whether a GET now would wait for output."""
        return not self._out and not self._closing and not self._upgraded

    async def post(self, body: str) -> Response:
        """Hand the client's packets to the session."""
        session = self.session
        assert session is not None
        if self._upgraded or self._posting or session.state is not _OPEN:
            return error(BAD_REQUEST)
        limit = session.settings.MAX_PAYLOAD
        # A str of n characters is at most 4n bytes of UTF-8: encode only when the length cannot tell.
        if len(body) > limit // 4 and len(body.encode()) > limit:
            self._close_with(CloseCode.TOO_BIG, f"POST over MAX_PAYLOAD ({limit} bytes)")
            return error(BAD_REQUEST, status=413)
        try:
            packets = protocol.decode_payload(body)
        except protocol.ProtocolError as bad:
            self._close_with(CloseCode.PROTOCOL_ERROR, str(bad))
            return error(BAD_REQUEST)
        self._posting = True
        try:
            for packet in packets:
                if isinstance(packet, bytes):
                    session.receive_binary(packet)
                else:
                    session.receive_text(packet)
                if session.state is not _OPEN:
                    break
                if session.backlogged is not None:
                    await session.wait_backlog()
        finally:
            self._posting = False
        return 200, "ok", _TEXT

    def _close_with(self, code: int, reason: str) -> None:
        assert self.session is not None
        self.session.close(code, reason)

    # -- the upgrade -----------------------------------------------------------

    def probed(self) -> None:
        """A WebSocket asked to take over: the waiting GET returns, so the client pauses polling."""
        self._probed = True
        if self._waiter is not None and not self._out:
            self._out.append(protocol.EIO_NOOP)
        self._wake()

    def upgrade_to(self, transport: Transport) -> bool:
        """Hand the session to ``transport`` (the WebSocket); False if it is gone or taken."""
        session = self.session
        if session is None or self._upgraded or session.state is not _OPEN:
            return False
        self._upgraded = True
        unsent, self._out = self._out, []
        del self.runtime.polling[session.sid]
        session.upgrade(transport, unsent)
        if self._waiter is not None:
            self._out.append(protocol.EIO_NOOP)
            self._wake()
        return True


async def handle(
    runtime: Runtime, scope: dict[str, Any], method: str, query: dict[str, str], body: str, namespace: str | None
) -> Response:
    """
    Answer one long-polling request: ``query`` holds its ``EIO``,
    ``transport`` and ``sid``; ``namespace`` restricts a new session to one
    channel (its own route).
    """
    if query.get("EIO") != "4":
        return error(UNSUPPORTED_VERSION)
    if query.get("transport") != "polling":
        return error(UNKNOWN_TRANSPORT)
    sid = query.get("sid")
    if sid is None:
        if method != "GET":
            return error(BAD_HANDSHAKE_METHOD)
        return await _handshake(runtime, scope, namespace)
    if method not in ("GET", "POST"):
        return error(BAD_REQUEST)
    owner = sid_owner(sid)
    if owner is None:
        return error(UNKNOWN_SID)
    if owner != runtime.bridge.process_id and runtime.bridge.enabled:
        return await _relay(runtime, owner, method, sid, body)
    return await _serve(runtime, method, sid, body)


def refuse_too_big(runtime: Runtime, query: dict[str, str]) -> Response:
    """
    Answer a POST whose body the server would not even read (over Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``): 413, and its session, if this process
    holds it, closed as for any POST over ``MAX_PAYLOAD``.
    """
    transport = runtime.polling.get(query.get("sid", ""))
    if transport is not None and transport.session is not None:
        limit = transport.session.settings.MAX_PAYLOAD
        transport._close_with(CloseCode.TOO_BIG, f"POST over MAX_PAYLOAD ({limit} bytes)")
    return error(BAD_REQUEST, status=413)


async def _handshake(runtime: Runtime, scope: dict[str, Any], namespace: str | None) -> Response:
    if runtime.drainer.draining:
        # Clients retry with their backoff, through the load balancer to another process.
        return error(DRAINING, status=503)
    transport = PollingTransport(runtime)
    session = transport.session = EngineSession(transport, scope, namespace, runtime)
    runtime.polling[session.sid] = transport
    if runtime.bridge.enabled:
        _listen(runtime)
        relay.listen(runtime)
        await runtime.bridge.ready()  # so that requests relayed from other processes reach this one
    session.open(upgrades=("websocket",))
    packets, transport._out = transport._out, []
    return 200, protocol.encode_payload(packets), _TEXT


async def _serve(runtime: Runtime, method: str, sid: str, body: str) -> Response:
    transport = runtime.polling.get(sid)
    if transport is None:
        return error(UNKNOWN_SID)
    if method == "GET":
        return await transport.get()
    return await transport.post(body)


# -- the relay between processes ---------------------------------------------------


def _listen(runtime: Runtime) -> None:
    """Have this process answer relayed requests and take the answers to its own."""
    bridge = runtime.bridge
    bridge.on(RELAY, lambda message: runtime.loop.create_task(_answer(runtime, message)))
    bridge.on(RELAY_ANSWER, lambda message: _answered(runtime, message))


async def _relay(runtime: Runtime, owner: str, method: str, sid: str, body: str) -> Response:
    _listen(runtime)
    bridge = runtime.bridge
    await bridge.ready()
    request = secrets.token_hex(8)
    taken: asyncio.Future[None] = runtime.loop.create_future()
    answer: asyncio.Future[Response] = runtime.loop.create_future()
    runtime.relayed[request] = (taken, answer)
    message = {
        "type": RELAY,
        "request": request,
        "reply_to": bridge.process_id,
        "method": method,
        "sid": sid,
        "body": body,
    }
    bridge.publish([process_group(owner)], message, size=len(body))
    wait = RELAY_WAIT + (runtime.settings.PING_INTERVAL if method == "GET" else 0)
    try:
        # The owner says at once that it has the request, so a dead owner is
        # known within OWNER_WAIT, however long a GET may then wait.
        await asyncio.wait_for(asyncio.shield(taken), OWNER_WAIT)
        return await asyncio.wait_for(answer, wait)
    except TimeoutError:
        # The owner is gone (or the layer is down): the client starts a new session.
        refusals.refused(
            "no answer from the process holding long-polling session %s: told the client to start again", sid
        )
        return error(UNKNOWN_SID)
    finally:
        runtime.relayed.pop(request, None)


async def _answer(runtime: Runtime, message: dict[str, Any]) -> None:
    requester = [process_group(message["reply_to"])]
    transport = runtime.polling.get(message["sid"])
    if message["method"] == "GET" and transport is not None and transport.would_wait():
        # The answer may take a ping interval: say at once that it is coming.
        runtime.bridge.publish(requester, {"type": RELAY_ANSWER, "request": message["request"], "taken": True})
    status, body, content_type = await _serve(runtime, message["method"], message["sid"], message["body"])
    reply = {
        "type": RELAY_ANSWER,
        "request": message["request"],
        "status": status,
        "body": body,
        "content_type": content_type,
    }
    runtime.bridge.publish(requester, reply, size=len(body))


def _answered(runtime: Runtime, message: dict[str, Any]) -> None:
    waiting = runtime.relayed.get(message["request"])
    if waiting is None:
        return
    taken, answer = waiting
    if not taken.done():
        taken.set_result(None)
    if not message.get("taken") and not answer.done():
        answer.set_result((message["status"], message["body"], message["content_type"]))
