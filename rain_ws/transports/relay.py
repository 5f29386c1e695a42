"""
The upgrade of a long-polling session whose WebSocket reaches another
process: frames relayed between that process and the session's owner
through the channel layer.

A session cannot move between processes once its sockets exist (their
listeners are closures in the owner's memory), so it stays with its owner.
The process that took the WebSocket (the relay) asks the owner to accept
the probe and the upgrade, then passes each frame from the client to the
owner, and the owner's :class:`RelayTransport` passes each frame for the
client back. A relayed event costs two layer messages more than one on the
owner; a WebSocket that reaches the owner, or a process on its own, costs
nothing extra.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable
from typing import Any, Protocol

from .. import protocol
from ..engine import CloseCode, EngineSession, State
from ..layer import DONE, process_group
from ..runtime import Runtime

__all__ = ["RelayTransport", "relay_frames"]

logger = logging.getLogger("rain_ws")

#: Layer messages: to the owner (probe, upgrade, a frame in, the client gone),
#: and to the relay (an answer, a frame out or the close).
PROBE = "rain_ws.relay.probe"
UPGRADE = "rain_ws.relay.upgrade"
FRAME_IN = "rain_ws.relay.in"
GONE = "rain_ws.relay.gone"
ANSWER = "rain_ws.relay.answer"
FRAME_OUT = "rain_ws.relay.out"

#: Seconds the relay waits for the owner's answer to the probe and the upgrade.
OWNER_WAIT = 2.0

_OPEN = State.OPEN


class RelayedSocket(Protocol):
    """What the relay needs from the WebSocket consumer it serves."""

    def send_text(self, text: str) -> None: ...

    def send_bytes(self, data: bytes) -> None: ...

    def close(self, code: int) -> int: ...


class RelayTransport:
    """The owner's side: the session's transport is a WebSocket on the relay process."""

    name = "websocket"
    pushes_back = False

    def __init__(self, runtime: Runtime, relay: str, connection: str, sends_empty_bytes: bool) -> None:
        self.runtime = runtime
        self.session: EngineSession | None = None
        self.sends_empty_bytes = sends_empty_bytes
        self._to_relay = [process_group(relay)]
        self._connection = connection

    def send_text(self, text: str) -> None:
        self._out({"text": text})

    def send_bytes(self, data: bytes) -> None:
        self._out({"bytes": data})

    def flushed(self) -> Awaitable[None]:
        return DONE

    def close(self, code: int) -> int:
        self._out({"close": code})
        self.runtime.loop.call_soon(self.end)
        return code

    def end(self) -> None:
        """The WebSocket is gone, or the session closed it: the session ends."""
        session = self.runtime.relayed_sessions.pop(self._connection, None)
        if session is not None:
            session.ended()

    def _out(self, frame: dict[str, Any]) -> None:
        payload = frame.get("text") or frame.get("bytes") or ""
        message = {"type": FRAME_OUT, "connection": self._connection, **frame}
        self.runtime.bridge.publish(self._to_relay, message, size=len(payload))


def listen(runtime: Runtime) -> None:
    """Have this process play both parts: owner of sessions, and relay of WebSockets."""
    bridge = runtime.bridge
    bridge.on(PROBE, lambda message: _on_probe(runtime, message))
    bridge.on(UPGRADE, lambda message: _on_upgrade(runtime, message))
    bridge.on(FRAME_IN, lambda message: _on_frame_in(runtime, message))
    bridge.on(GONE, lambda message: _on_gone(runtime, message))
    bridge.on(ANSWER, lambda message: _on_answer(runtime, message))
    bridge.on(FRAME_OUT, lambda message: _on_frame_out(runtime, message))


# -- the relay's side ---------------------------------------------------------------


async def relay_frames(
    runtime: Runtime, socket: RelayedSocket, receive: Any, sid: str, owner: str, sends_empty_bytes: bool
) -> None:
    """
    Serve the WebSocket of session ``sid``, held by process ``owner``: the
    probe and the upgrade through the owner, then every frame both ways,
    until the client goes or the owner closes it.
    """
    listen(runtime)
    bridge = runtime.bridge
    await bridge.ready()
    connection = secrets.token_hex(8)
    to_owner = [process_group(owner)]
    runtime.relay_sockets[connection] = socket
    max_payload = runtime.settings.MAX_PAYLOAD
    try:
        wait = runtime.settings.PING_TIMEOUT
        probe = await asyncio.wait_for(receive(), wait)
        if probe.get("text") != protocol.EIO_PING + "probe":
            return
        if not await _ask(runtime, connection, to_owner, {"type": PROBE, "sid": sid, "relay": bridge.process_id}):
            return
        socket.send_text(protocol.EIO_PONG + "probe")
        upgrade = await asyncio.wait_for(receive(), wait)
        if upgrade.get("text") != protocol.EIO_UPGRADE:
            return
        message = {"type": UPGRADE, "sid": sid, "relay": bridge.process_id, "empty_bytes": sends_empty_bytes}
        if not await _ask(runtime, connection, to_owner, message):
            return
        while True:
            frame = await receive()
            if frame["type"] == "websocket.disconnect":
                return
            if frame["type"] != "websocket.receive":
                continue
            text = frame.get("text")
            payload = {"text": text} if text is not None else {"bytes": frame.get("bytes") or b""}
            if len(text if text is not None else payload["bytes"]) > max_payload:
                logger.warning(
                    "closing a relayed WebSocket of session %s: frame over MAX_PAYLOAD (%d bytes)", sid, max_payload
                )
                socket.close(CloseCode.TOO_BIG)
                return
            if bridge.overloaded:
                # The layer does not keep up: rather than hold this client's
                # frames without bound, close; the client reconnects.
                logger.warning("closing a relayed WebSocket of session %s: the channel layer is behind", sid)
                socket.close(CloseCode.TRY_AGAIN_LATER)
                return
            size = len(text) if text is not None else len(payload["bytes"])
            bridge.publish(to_owner, {"type": FRAME_IN, "connection": connection, **payload}, size=size)
    except TimeoutError:
        return
    finally:
        del runtime.relay_sockets[connection]
        bridge.publish(to_owner, {"type": GONE, "connection": connection})


async def _ask(runtime: Runtime, connection: str, to_owner: list[str], message: dict[str, Any]) -> bool:
    answer: asyncio.Future[bool] = runtime.loop.create_future()
    runtime.relay_answers[connection] = answer
    runtime.bridge.publish(to_owner, {**message, "connection": connection})
    try:
        return await asyncio.wait_for(answer, OWNER_WAIT)
    except TimeoutError:
        logger.warning(
            "no answer from the process holding session %s: the WebSocket upgrade is refused", message["sid"]
        )
        return False
    finally:
        runtime.relay_answers.pop(connection, None)


def _on_answer(runtime: Runtime, message: dict[str, Any]) -> None:
    answer = runtime.relay_answers.get(message["connection"])
    if answer is not None and not answer.done():
        answer.set_result(message["ok"])


def _on_frame_out(runtime: Runtime, message: dict[str, Any]) -> None:
    socket = runtime.relay_sockets.get(message["connection"])
    if socket is None:
        return
    if "text" in message:
        socket.send_text(message["text"])
    elif "bytes" in message:
        socket.send_bytes(message["bytes"])
    else:
        socket.close(message["close"])


# -- the owner's side ---------------------------------------------------------------


def _reply(runtime: Runtime, message: dict[str, Any], ok: bool) -> None:
    answer = {"type": ANSWER, "connection": message["connection"], "ok": ok}
    runtime.bridge.publish([process_group(message["relay"])], answer)


def _on_probe(runtime: Runtime, message: dict[str, Any]) -> None:
    polling = runtime.polling.get(message["sid"])
    ok = polling is not None and polling.session is not None and polling.session.state is _OPEN
    if ok:
        polling.probed()
    _reply(runtime, message, ok)


def _on_upgrade(runtime: Runtime, message: dict[str, Any]) -> None:
    polling = runtime.polling.get(message["sid"])
    ok = False
    if polling is not None and polling.session is not None:
        session = polling.session
        transport = RelayTransport(runtime, message["relay"], message["connection"], message["empty_bytes"])
        transport.session = session
        ok = polling.upgrade_to(transport)
        if ok:
            runtime.relayed_sessions[message["connection"]] = session
    _reply(runtime, message, ok)


def _on_frame_in(runtime: Runtime, message: dict[str, Any]) -> None:
    session = runtime.relayed_sessions.get(message["connection"])
    if session is None:
        return
    if "text" in message:
        session.receive_text(message["text"])
    else:
        session.receive_binary(message["bytes"])


def _on_gone(runtime: Runtime, message: dict[str, Any]) -> None:
    session = runtime.relayed_sessions.pop(message["connection"], None)
    if session is not None:
        session.ended()
