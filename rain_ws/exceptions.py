"""The exceptions handlers raise and catch."""

from __future__ import annotations

__all__ = ["AckTimeout", "ConnectRefused", "RainError", "SocketDisconnected"]


class RainError(Exception):
    """
    An error meant for the client.

    Raised in a listener, it is acked to the client as
    ``[{"message": message, "code": code}, null]`` (RAIN's error-first
    convention); raised in ``authorize(socket)``, it refuses the CONNECT with
    ``message``. Its text is always shown to the client, unlike other
    exceptions, whose text is shown only when ``DEBUG`` is on.
    """

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def as_ack(self) -> dict[str, str]:
        """The error object the client's ack callback receives."""
        return {"message": self.message, "code": self.code}


class AckTimeout(TimeoutError):
    """The client did not acknowledge a ``socket.call()`` in time."""


class SocketDisconnected(ConnectionError):
    """The socket went away while the server was waiting for its ack."""


class ConnectRefused(Exception):
    """
    A namespace CONNECT is refused: the client gets a CONNECT_ERROR whose
    ``message`` says why and whose ``data.code`` a program can act on.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
