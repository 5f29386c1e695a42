"""
The wire format: Engine.IO v4 and Socket.IO v5 on the WebSocket transport.

This module is pure: no I/O, no Django, no asyncio. It turns frames into
:class:`Packet` objects and back, and raises :class:`ProtocolError` for
anything that is not a valid packet, so it can be tested and fuzzed on its
own. It is the only place in rain_ws that knows how packets are spelled.

On the WebSocket transport every WebSocket text frame is one Engine.IO packet
(a one-character type, then its payload), and every binary frame is an
Engine.IO message carrying raw bytes: for Socket.IO, an attachment of the
binary packet announced just before it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACK",
    "BINARY_ACK",
    "BINARY_EVENT",
    "CONNECT",
    "CONNECT_ERROR",
    "DISCONNECT",
    "EVENT",
    "EIO_CLOSE",
    "EIO_MESSAGE",
    "EIO_NOOP",
    "EIO_OPEN",
    "EIO_PING",
    "EIO_PONG",
    "EIO_UPGRADE",
    "RESERVED_EVENTS",
    "Packet",
    "ProtocolError",
    "decode_packet",
    "encode_open",
    "encode_packet",
    "namespace_prefix",
    "decode_payload",
    "encode_payload",
    "reconstruct",
]

# Engine.IO packet types, as they appear on the wire.
EIO_OPEN = "0"
EIO_CLOSE = "1"
EIO_PING = "2"
EIO_PONG = "3"
EIO_MESSAGE = "4"
EIO_UPGRADE = "5"
EIO_NOOP = "6"

# Socket.IO packet types.
CONNECT = 0
DISCONNECT = 1
EVENT = 2
ACK = 3
CONNECT_ERROR = 4
BINARY_EVENT = 5
BINARY_ACK = 6

#: Event names a peer may not emit: the client libraries use them for their own
#: life-cycle events, so an event carrying one of them is malformed.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)

_DIGITS = frozenset("0123456789")


class ProtocolError(ValueError):
    """A frame that is not a valid Engine.IO or Socket.IO packet."""


@dataclass(slots=True)
class Packet:
    """
    One Socket.IO packet.

    ``attachments`` is the number of binary frames that follow a
    ``BINARY_EVENT`` or ``BINARY_ACK`` on the wire; ``data`` then still holds
    ``{"_placeholder": true, "num": i}`` objects until :func:`reconstruct`
    replaces them with the frames' bytes.
    """

    type: int
    namespace: str = "/"
    data: Any = None
    id: int | None = None
    attachments: int = 0


# --------------------------------------------------------------------------
# JSON


class _HasBinary(Exception):
    """Raised from inside the JSON encoder when the data holds bytes."""


def _no_binary(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise _HasBinary
    raise TypeError(
        f"Object of type {type(value).__name__} cannot be sent over a socket: "
        "arguments must be JSON-serializable or bytes"
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_finite_float(text: str) -> float:
    # A literal such as 1e999 is valid JSON but overflows to infinity, which
    # the encoder (like JSON itself) cannot represent: refuse it on the way in
    # rather than fail when the value is sent back.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range")
    return value


# One encoder for every packet: compact separators, UTF-8 kept as is (the
# frame is text anyway), and bytes detected by the ``default`` hook so that
# data without bytes is encoded in a single C-level pass. The ASCII twin is
# only the fallback of :func:`_encode_json` for lone surrogates.
_encode_utf8 = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_no_binary
).encode
_encode_ascii = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_no_binary
).encode
_decode_json = json.JSONDecoder(
    parse_float=_parse_finite_float, parse_constant=_reject_constant
).decode


def _encode_json(data: Any) -> str:
    """
    JSON text that a WebSocket text frame can carry.

    A string may hold a lone surrogate (a peer can send one as ``"\\ud800"``);
    kept as is it cannot be encoded as UTF-8, so such data is written with
    ``\\u`` escapes instead, as JavaScript's ``JSON.stringify`` does.
    """
    text = _encode_utf8(data)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _encode_ascii(data)
    return text


# --------------------------------------------------------------------------
# Encoding


def encode_open(
    sid: str, ping_interval: float, ping_timeout: float, max_payload: int, upgrades: tuple[str, ...] = ()
) -> str:
    """The Engine.IO OPEN packet; intervals are given in seconds."""
    return EIO_OPEN + _encode_json(
        {
            "sid": sid,
            "upgrades": list(upgrades),
            "pingInterval": round(ping_interval * 1000),
            "pingTimeout": round(ping_timeout * 1000),
            "maxPayload": max_payload,
        }
    )


# --------------------------------------------------------------------------
# HTTP long-polling payloads

#: Separates the Engine.IO packets of one long-polling payload.
RECORD_SEPARATOR = "\x1e"


def encode_payload(packets: list[str | bytes]) -> str:
    """
    A long-polling payload: the packets, text as they are and binary ones as
    ``b`` and their base64, separated by the record separator.
    """
    return RECORD_SEPARATOR.join(
        "b" + base64.b64encode(packet).decode("ascii") if isinstance(packet, bytes) else packet
        for packet in packets
    )


def decode_payload(payload: str) -> list[str | bytes]:
    """
    The packets of a long-polling payload: text packets as ``str``, binary
    ones (``b`` and base64) as ``bytes``. Raise :class:`ProtocolError` for an
    empty packet or invalid base64.
    """
    packets: list[str | bytes] = []
    for packet in payload.split(RECORD_SEPARATOR):
        if not packet:
            raise ProtocolError("empty packet in a long-polling payload")
        if packet[0] == "b":
            try:
                packets.append(base64.b64decode(packet[1:], validate=True))
            except (binascii.Error, ValueError):
                raise ProtocolError("invalid base64 in a binary packet") from None
        else:
            packets.append(packet)
    return packets


def namespace_prefix(namespace: str) -> str:
    """The part of a packet that names its namespace: empty for ``/``."""
    return "" if namespace == "/" else namespace + ","


def encode_packet(
    type: int, namespace: str = "/", data: Any = None, id: int | None = None
) -> tuple[str, list[bytes]]:
    """
    Encode a Socket.IO packet as WebSocket frames.

    Return the text frame (with its Engine.IO message prefix) and the binary
    frames that follow it. Bytes anywhere in ``data`` turn an ``EVENT`` into a
    ``BINARY_EVENT`` (an ``ACK`` into a ``BINARY_ACK``) whose bytes travel as
    separate frames.
    """
    prefix = namespace_prefix(namespace)
    ack_id = "" if id is None else str(id)
    if data is None:
        return f"4{type}{prefix}{ack_id}", []
    try:
        body = _encode_json(data)
    except _HasBinary:
        if type not in (EVENT, ACK):
            raise TypeError("only events and acks may carry bytes") from None
        buffers: list[bytes] = []
        body = _encode_json(_deconstruct(data, buffers))
        type = BINARY_EVENT if type == EVENT else BINARY_ACK
        return f"4{type}{len(buffers)}-{prefix}{ack_id}{body}", buffers
    return f"4{type}{prefix}{ack_id}{body}", []


def _deconstruct(data: Any, buffers: list[bytes]) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        buffers.append(bytes(data))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(data, (list, tuple)):
        return [_deconstruct(item, buffers) for item in data]
    if isinstance(data, dict):
        return {key: _deconstruct(value, buffers) for key, value in data.items()}
    return data


# --------------------------------------------------------------------------
# Decoding


def decode_packet(text: str) -> Packet:
    """
    Decode a Socket.IO packet: the payload of an Engine.IO message frame, that
    is the text frame without its leading ``4``.

    A binary packet comes back with its placeholders in place and
    ``attachments`` set; pass it to :func:`reconstruct` once that many binary
    frames have arrived.
    """
    if not text or text[0] not in "0123456":
        raise ProtocolError("unknown Socket.IO packet type")
    type = ord(text[0]) - 48
    end = len(text)
    i = 1

    attachments = 0
    if type == BINARY_EVENT or type == BINARY_ACK:
        dash = text.find("-", 1)
        count = text[1:dash] if dash > 0 else ""
        if not count or not _DIGITS.issuperset(count) or len(count) > 6:
            raise ProtocolError("binary packet without a valid attachment count")
        attachments = int(count)
        i = dash + 1

    namespace = "/"
    if i < end and text[i] == "/":
        comma = text.find(",", i)
        if comma == -1:
            namespace = text[i:]
            i = end
        else:
            namespace = text[i:comma]
            i = comma + 1

    ack_id = None
    start = i
    while i < end and text[i] in _DIGITS:
        i += 1
    if i > start:
        if i - start > 15:
            raise ProtocolError("ack id too large")
        ack_id = int(text[start:i])

    data = None
    if i < end:
        try:
            data = _decode_json(text[i:])
        except (ValueError, RecursionError):
            raise ProtocolError("packet payload is not valid JSON") from None

    _check_payload(type, data, i < end)
    if ack_id is not None and type not in (EVENT, BINARY_EVENT, ACK, BINARY_ACK):
        raise ProtocolError("only events and acks carry an ack id")
    if ack_id is None and (type == ACK or type == BINARY_ACK):
        raise ProtocolError("ack without an ack id")
    return Packet(type, namespace, data, ack_id, attachments)


def _check_payload(type: int, data: Any, present: bool) -> None:
    if type == CONNECT:
        if present and not isinstance(data, dict):
            raise ProtocolError("CONNECT payload must be an object")
    elif type == DISCONNECT:
        if present:
            raise ProtocolError("DISCONNECT carries no payload")
    elif type == CONNECT_ERROR:
        if not isinstance(data, (dict, str)):
            raise ProtocolError("CONNECT_ERROR payload must be an object or a string")
    elif type == EVENT or type == BINARY_EVENT:
        if not isinstance(data, list) or not data:
            raise ProtocolError("event payload must be a non-empty array")
        name = data[0]
        if isinstance(name, str):
            if name in RESERVED_EVENTS:
                raise ProtocolError(f"{name!r} is a reserved event name")
        elif isinstance(name, bool) or not isinstance(name, (int, float)):
            raise ProtocolError("event name must be a string or a number")
    elif not isinstance(data, list):  # ACK, BINARY_ACK
        raise ProtocolError("ack payload must be an array")


def reconstruct(packet: Packet, buffers: list[bytes]) -> Packet:
    """
    Put the binary frames received after a binary packet in place of its
    placeholders, and turn it into a plain ``EVENT`` or ``ACK``.

    Every placeholder must name one of the frames; a frame that no placeholder
    names is an error too, since the peer sent something that would be lost.
    """
    if len(buffers) != packet.attachments:
        raise ProtocolError("attachment count does not match the frames received")
    used: set[int] = set()
    try:
        data = _fill(packet.data, buffers, used)
    except RecursionError:
        raise ProtocolError("binary packet nested too deeply") from None
    if len(used) != len(buffers):
        raise ProtocolError("binary frame not referenced by any placeholder")
    return Packet(
        EVENT if packet.type == BINARY_EVENT else ACK, packet.namespace, data, packet.id
    )


def _fill(data: Any, buffers: list[bytes], used: set[int]) -> Any:
    if isinstance(data, list):
        return [_fill(item, buffers, used) for item in data]
    if isinstance(data, dict):
        if data.get("_placeholder") is True:
            num = data.get("num")
            if type(num) is not int or not 0 <= num < len(buffers):
                raise ProtocolError("placeholder names no attachment")
            used.add(num)
            return buffers[num]
        return {key: _fill(value, buffers, used) for key, value in data.items()}
    return data
