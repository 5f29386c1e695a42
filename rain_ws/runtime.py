"""
The runtime of a server process, and the way in from code outside a socket.

A :class:`Runtime` holds what one event loop shares between its
connections: the channel-layer bridge, the rooms, the index of sessions for
logout, the connection tracker (cap and idle reaper), the heartbeat, and the
recovery of sockets. It is made on first use in each event loop. :func:`broadcast`,
:func:`abroadcast` and :func:`end_session_everywhere` reach it from views,
signal receivers, management commands and threads.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from .aio import call_from_sync
from .conf import RainSettings, get_settings
from .drain import Drainer
from .heartbeat import Heartbeat
from .idle import ConnectionTracker
from .layer import LayerBridge
from .recovery import Recovery
from .replay import Replay
from .rooms import Rooms, check_target
from .sessions import SessionIndex, session_hash

__all__ = ["Runtime", "abroadcast", "broadcast", "end_session_everywhere", "reset", "runtime"]


class Runtime:
    """What the connections of one event loop (one server process) share."""

    def __init__(self, settings: RainSettings) -> None:
        self.loop = asyncio.get_running_loop()
        self.settings = settings
        self.bridge = LayerBridge(self.loop)
        #: Offsets and replay logs, and the recovery of sockets, with
        #: ``RECOVERY_WINDOW`` set; None without.
        self.replay: Replay | None = None
        self.recovery: Recovery | None = None
        if settings.RECOVERY_WINDOW:
            self.replay = Replay(self.bridge.process_id, settings.RECOVERY_MAX_EVENTS, settings.RECOVERY_MAX_BYTES)
        self.rooms = Rooms(self.bridge, self.replay)
        if settings.RECOVERY_WINDOW:
            self.recovery = Recovery(self.rooms, settings.RECOVERY_WINDOW)
        self.sessions = SessionIndex(self.bridge)
        self.tracker = ConnectionTracker(settings)
        self.heartbeat = Heartbeat(settings.PING_INTERVAL, settings.PING_TIMEOUT, settings.CONNECT_TIMEOUT)
        self.drainer = Drainer(self.bridge, self.tracker, settings.DRAIN_BATCH, settings.DRAIN_INTERVAL)
        #: This process's long-polling sessions by sid (their PollingTransport),
        #: and the requests it relayed to other processes, awaiting answers.
        self.polling: dict[str, Any] = {}
        self.relayed: dict[str, Any] = {}
        #: WebSocket upgrades relayed between processes
        #: (rain_ws.transports.relay), by connection id: this process's
        #: sessions whose WebSocket is elsewhere, this process's WebSockets
        #: of sessions held elsewhere, and their pending answers.
        self.relayed_sessions: dict[str, Any] = {}
        self.relay_sockets: dict[str, Any] = {}
        self.relay_answers: dict[str, asyncio.Future[bool]] = {}


_runtimes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime] = weakref.WeakKeyDictionary()


def runtime() -> Runtime:
    """The runtime of the running event loop, made on first use."""
    loop = asyncio.get_running_loop()
    found = _runtimes.get(loop)
    if found is None:
        found = _runtimes[loop] = Runtime(get_settings())
    return found


def reset() -> None:
    """
    Forget every event loop's runtime, so the next use makes a new one from
    the current settings: for tests that change ``RAIN_WS`` within one event
    loop. Connections already open keep the runtime they have.
    """
    _runtimes.clear()


def _server_loop() -> asyncio.AbstractEventLoop | None:
    for loop in list(_runtimes):
        if loop.is_running():
            return loop
    return None


async def abroadcast(channel: str, event: str, *args: Any, room: str | None = None) -> None:
    """
    Emit ``event`` to every socket of ``channel`` (its public name, e.g.
    ``"/chat/1.0/chat"``), or of one ``room`` of it, in every process.

    Call it from async code: an async view, a consumer, a task. It returns
    once the channel layer has taken the event for other processes.
    """
    rooms = [check_target(room)] if room is not None else []
    sent = runtime().rooms.emit(channel, event, args, rooms, track=True)
    if sent is not None:
        await sent


def broadcast(channel: str, event: str, *args: Any, room: str | None = None) -> None:
    """:func:`abroadcast` for sync code: a view, a signal handler, a management command, a thread."""
    call_from_sync(_server_loop(), _abroadcast, channel, event, args, room)


async def _abroadcast(channel: str, event: str, args: tuple[Any, ...], room: str | None) -> None:
    await abroadcast(channel, event, *args, room=room)


def end_session_everywhere(session_key: str) -> None:
    """
    Disconnect every socket of a session, in every process (called from the
    logout receiver and :class:`~rain_ws.middleware.SessionEndMiddleware`).
    """
    key_hash = session_hash(session_key)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        call_from_sync(_server_loop(), _end_session, key_hash)
    else:
        runtime().sessions.end(key_hash)


async def _end_session(key_hash: str) -> None:
    sent = runtime().sessions.end(key_hash)
    if sent is not None:
        await sent
