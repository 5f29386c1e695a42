"""
Logout everywhere: a session that ends through Django ends its sockets at once.

Connected by ``RainWsConfig.ready()``. A logout (``user_logged_out``) and the
deletion of a database-backed session (a flush, the admin, ``clearsessions``)
disconnect every socket of that session in every process, with a
``session_expired`` event, without waiting for the socket's next event.
"""

from __future__ import annotations

from typing import Any

from .rooms import end_session_everywhere

__all__ = ["session_deleted", "user_logged_out"]


def user_logged_out(sender: Any, request: Any = None, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if key:
        end_session_everywhere(key)


def session_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    end_session_everywhere(instance.session_key)
