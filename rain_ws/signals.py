"""
Logout everywhere: a user's logout ends the sockets of that session at once.

Connected by ``RainWsConfig.ready()``: on ``user_logged_out`` every socket of
the session, in every process, receives ``session_expired`` and is
disconnected, without waiting for its next event. Sessions flushed or
replaced by other views are handled by
:class:`rain_ws.middleware.SessionEndMiddleware`; sessions that simply expire
are noticed at the socket's next event.
"""

from __future__ import annotations

from typing import Any

from .runtime import end_session_everywhere

__all__ = ["user_logged_out"]


def user_logged_out(sender: Any, request: Any = None, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if key:
        end_session_everywhere(key)
