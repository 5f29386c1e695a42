"""
A client that stops reading: a raw TCP socket that does the WebSocket
handshake by hand, sends a few Socket.IO packets, and never reads again.

Its receive buffer is made as small as the kernel allows before it connects,
so that what the server sends piles up on the server's side rather than in
this process's kernel buffers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any

from tests.support.servers import Server

__all__ = ["StalledClient"]


def _text_frame(text: str) -> bytes:
    """A masked text frame, as a client sends it (the all-zero mask is valid)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, 0x80 | size))
    elif size < 65536:
        header = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


class StalledClient:
    """One connection whose reading side is stalled once :meth:`open` returns."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        host, port = sock.getsockname()[:2]
        #: The client's ``host:port``, as the server names it in its log.
        self.address = f"{host}:{port}"

    @classmethod
    async def open(cls, server: Server, namespace: str) -> StalledClient:
        """Open an Engine.IO connection and send a CONNECT for ``namespace``, without waiting for replies."""
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        sock.setblocking(False)
        await loop.sock_connect(sock, (server.host, server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {server.host}:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        # Read the handshake's answer, and no more than what came with it.
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
            if not chunk:
                raise ConnectionError(f"the server closed the connection during the handshake: {answer!r}")
            answer += chunk
        if not answer.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {answer[:100]!r}")
        client = cls(sock)
        await client._send("40" + namespace + ",")
        return client

    async def emit(self, namespace: str, event: str, *args: Any) -> None:
        """Emit ``event`` on ``namespace`` (no ack asked: none would be read)."""
        await self._send("42" + namespace + "," + json.dumps([event, *args]))

    async def _send(self, text: str) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, _text_frame(text))

    def close(self) -> None:
        self.sock.close()
