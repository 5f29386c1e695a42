"""
The bridge between this server process and the Channels channel layer.

A process reads one layer channel of its own, and joins a layer group for
each channel and room while it has members there, so a message for a room
costs one layer message per process with members, not one per socket. The
bridge joins groups (retrying while the layer is down, joining every group
again after a Redis restart, and refreshing memberships before the layer's
group expiry), sends messages in order from one task so that no emit waits on
the layer, and hands each message it reads to the handler of its type.

Socket ids are defined here because they name their process: a message for
one socket goes to that process's own group.

With no channel layer configured, or Channels' in-memory layer (which cannot
reach another process), the bridge is off: nothing is joined or sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

__all__ = [
    "DONE",
    "LAYER_WAIT",
    "MAX_OUTGOING",
    "MAX_OUTGOING_BYTES",
    "LayerBridge",
    "group_name",
    "is_socket_id",
    "new_process_id",
    "new_socket_id",
    "process_group",
    "process_of",
]

logger = logging.getLogger("rain_ws")

#: Seconds a join waits for the channel layer before going on without it
#: (the join is then finished, or retried, in the background).
LAYER_WAIT = 1.0

#: Most messages a process holds for a layer that is slow or down; past it
#: the oldest are dropped (and counted as undelivered).
MAX_OUTGOING = 10_000
#: Most bytes of payload (events, relayed frames and requests) those messages
#: may hold; past it the oldest are dropped too.
MAX_OUTGOING_BYTES = 64 * 1024 * 1024

#: A socket id is its process id (8 hex digits), "-", then 16 random
#: URL-safe characters.
_PROCESS_ID_BYTES = 4
_PROCESS_ID_LENGTH = 2 * _PROCESS_ID_BYTES
_SOCKET_ID_RANDOM_BYTES = 12
_SOCKET_ID_LENGTH = _PROCESS_ID_LENGTH + 1 + 16
_HEX = frozenset("0123456789abcdef")

#: Every process is in this group (a session's end reaches them all).
ALL_PROCESSES = "rain_ws.all"

try:
    from redis.exceptions import TimeoutError as _RedisTimeout
except ImportError:  # channels-redis is not installed
    _READ_TIMEOUTS: tuple[type[BaseException], ...] = (TimeoutError,)
else:
    _READ_TIMEOUTS = (TimeoutError, _RedisTimeout)


def new_process_id() -> str:
    return secrets.token_hex(_PROCESS_ID_BYTES)


def new_socket_id(process_id: str) -> str:
    """A new socket id of the process ``process_id``."""
    return f"{process_id}-{secrets.token_urlsafe(_SOCKET_ID_RANDOM_BYTES)}"


def is_socket_id(name: str) -> bool:
    """Whether ``name`` has the shape of a socket id (of any process)."""
    return (
        len(name) == _SOCKET_ID_LENGTH
        and name[_PROCESS_ID_LENGTH] == "-"
        and _HEX.issuperset(name[:_PROCESS_ID_LENGTH])
    )


def process_of(socket_id: str) -> str:
    """The id of the process that holds the socket ``socket_id``."""
    return socket_id[:_PROCESS_ID_LENGTH]


def process_group(process_id: str) -> str:
    return f"rain_ws.p.{process_id}"


def group_name(kind: str, *parts: str) -> str:
    """
    A layer group name for ``parts`` (a channel, a room, a session).

    Group names allow only ASCII letters, digits, "-", "_" and "." and fewer
    than 100 characters; a digest fits any name, keeps distinct names apart,
    and keeps names (and session keys) out of Redis in clear.
    """
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]
    return f"rain_ws.{kind}.{digest}"


def _usable_layer() -> Any:
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return None
    return layer


Handler = Callable[[dict[str, Any]], None]


class _Done:
    """An awaitable that is already done: what a call whose work is finished returns."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())


#: Returned by calls that have done all their work, so that both
#: ``await call()`` and a plain ``call()`` are right.
DONE: Awaitable[None] = _Done()


class _Bounded:
    """Awaiting it waits for ``task`` at most ``timeout`` seconds; the task goes on either way."""

    __slots__ = ("task", "timeout")

    def __init__(self, task: asyncio.Task[None], timeout: float) -> None:
        self.task = task
        self.timeout = timeout

    def __await__(self) -> Generator[Any, None, None]:
        yield from asyncio.wait((self.task,), timeout=self.timeout).__await__()


class LayerBridge:
    """This process's channel-layer channel, its group memberships and its outgoing messages."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.process_id = new_process_id()
        self.layer = _usable_layer()
        self.groups: set[str] = set()
        self.undelivered = 0
        self._handlers: dict[str, Handler] = {}
        # Ids of recent messages sent to several groups, which reach a
        # process once per group it is in: the first copy only is handled.
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._channel_name: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        # Joins under way (a later member waits for the first's), and joins
        # that failed while the layer was down, retried until they work.
        self._joining: dict[str, asyncio.Task[None]] = {}
        self._unjoined: set[str] = set()
        self._retrying: asyncio.Task[None] | None = None
        # Messages waiting to be sent, in order, by one sender task, so no
        # emit waits on a slow or stalled layer: (groups, message, done).
        # (groups, message, done, payload size).
        self._outgoing: deque[tuple[list[str], dict[str, Any], asyncio.Future[None] | None, int]] = deque()
        self._outgoing_bytes = 0
        self._sender: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def enabled(self) -> bool:
        """Whether there is a layer that reaches other processes."""
        return self.layer is not None

    def on(self, kind: str, handler: Handler) -> None:
        """Call ``handler`` with every message of type ``kind`` from another process."""
        self._handlers[kind] = handler

    # -- groups --------------------------------------------------------------

    def join(self, group: str) -> Awaitable[None]:
        """
        Have this process in ``group``: start the join now, and return what
        to await to know the layer has it, has failed to (it is then retried
        in the background), or has not answered within ``LAYER_WAIT``
        seconds (the join goes on in the background): a stalled layer delays
        a join by that at most.
        """
        if group not in self.groups:
            self.groups.add(group)
            if self.layer is None:
                return DONE
            joining = self.loop.create_task(self._add(group))
            if not joining.done():  # an eager task factory may have finished it
                self._joining[group] = joining
        pending = self._joining.get(group)
        return DONE if pending is None else _Bounded(pending, LAYER_WAIT)

    async def _add(self, group: str) -> None:
        try:
            await self.ready()
            await self.layer.group_add(group, self._channel_name)
        except Exception as error:
            logger.error("channel layer unavailable, %s not joined yet: %s", group, error)
            self._unjoined.add(group)
            if self._retrying is None:
                self._retrying = self.loop.create_task(self._retry_joins())
        finally:
            self._joining.pop(group, None)

    async def _retry_joins(self) -> None:
        delay = 0.5
        try:
            while self._unjoined:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                for group in list(self._unjoined):
                    if group not in self.groups:
                        self._unjoined.discard(group)
                        continue
                    try:
                        await self.layer.group_add(group, self._channel_name)
                    except Exception:
                        break
                    self._unjoined.discard(group)
        finally:
            self._retrying = None

    def leave(self, group: str) -> None:
        """Take this process out of ``group``, in the background."""
        self.groups.discard(group)
        self._unjoined.discard(group)
        if self.layer is not None and self._channel_name is not None:
            self._background(self._discard(group))

    async def _discard(self, group: str) -> None:
        try:
            await self.layer.group_discard(group, self._channel_name)
        except Exception as error:
            logger.warning("channel layer unavailable, %s not left: %s", group, error)

    def _background(self, coroutine: Any) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sending -------------------------------------------------------------

    def publish(
        self, groups: list[str], message: dict[str, Any], track: bool = False, size: int = 0
    ) -> asyncio.Future[None] | None:
        """
        Send ``message`` to ``groups``, after the messages before it, from
        the sender task: never wait here. With ``track``, return a future done
        once the layer has taken it (or failed to). ``size`` is the bytes of
        payload it carries. Past ``MAX_OUTGOING`` messages or
        ``MAX_OUTGOING_BYTES`` waiting (a layer that stalls), the oldest are
        dropped, so memory stays bounded.
        """
        message["origin"] = self.process_id
        if len(groups) > 1:
            message["id"] = secrets.token_hex(8)
        done = self.loop.create_future() if track else None
        outgoing = self._outgoing
        while outgoing and (len(outgoing) >= MAX_OUTGOING or self._outgoing_bytes + size > MAX_OUTGOING_BYTES):
            _, _, dropped, dropped_size = outgoing.popleft()
            self._outgoing_bytes -= dropped_size
            if dropped is not None and not dropped.done():
                dropped.set_result(None)
            self._undelivered("over MAX_OUTGOING messages or MAX_OUTGOING_BYTES waiting for the layer")
        outgoing.append((groups, message, done, size))
        self._outgoing_bytes += size
        if self._sender is None:
            sender = self.loop.create_task(self._send_outgoing())
            if not sender.done():  # an eager task factory may have finished it
                self._sender = sender
        return done

    @property
    def overloaded(self) -> bool:
        """Whether half of ``MAX_OUTGOING_BYTES`` waits for the layer: senders of their own should stop."""
        return self._outgoing_bytes > MAX_OUTGOING_BYTES // 2

    def for_socket(self, socket_id: str) -> str:
        """The group that reaches the process holding the socket ``socket_id``."""
        return process_group(process_of(socket_id))

    async def _send_outgoing(self) -> None:
        outgoing = self._outgoing
        try:
            while outgoing:
                groups, message, done, size = outgoing.popleft()
                self._outgoing_bytes -= size
                try:
                    for group in groups:
                        await self.layer.group_send(group, message)
                except Exception as error:
                    self._undelivered(str(error))
                finally:
                    if done is not None and not done.done():
                        done.set_result(None)
        finally:
            self._sender = None

    def _undelivered(self, reason: str) -> None:
        self.undelivered += 1
        logger.error(
            "channel layer unavailable: a message did not reach other processes (%d so far): %s",
            self.undelivered,
            reason,
        )

    # -- reading -------------------------------------------------------------

    async def ready(self) -> None:
        """
        Make this process's layer channel and start reading it (with its own
        process group, through which requests for this process come), once.
        """
        if self._ready is None:
            self._ready = self.loop.create_future()
            self._reader = self.loop.create_task(self._read())
            expiry = getattr(self.layer, "group_expiry", None)
            if expiry:
                self._keepalive = self.loop.create_task(self._refresh_groups(expiry / 2))
        await asyncio.shield(self._ready)

    async def _refresh_groups(self, interval: float) -> None:
        """Join every group again now and then, so memberships outlive the layer's group expiry."""
        while True:
            await asyncio.sleep(interval)
            if self._channel_name is None:
                continue
            try:
                for group in list(self.groups):
                    await self.layer.group_add(group, self._channel_name)
            except Exception as error:
                logger.warning("channel layer unavailable, group memberships not refreshed: %s", error)

    async def _read(self) -> None:
        layer = self.layer
        delay = 0.5
        failing = False
        while True:
            try:
                if self._channel_name is None:
                    self._channel_name = await layer.new_channel("rain_ws")
                    base = {ALL_PROCESSES, process_group(self.process_id)}
                    self.groups |= base
                    for group in base:
                        await layer.group_add(group, self._channel_name)
                    if not self._ready.done():  # type: ignore[union-attr]
                        self._ready.set_result(None)  # type: ignore[union-attr]
                if failing:
                    # The layer is back, maybe empty (a Redis restart): join
                    # every group again before reading on.
                    for group in list(self.groups):
                        await layer.group_add(group, self._channel_name)
                    logger.warning("channel layer available again; %d group(s) rejoined", len(self.groups))
                    failing = False
                    delay = 0.5
                message = await layer.receive(self._channel_name)
            except asyncio.CancelledError:
                raise
            except _READ_TIMEOUTS:
                # A blocking read that outlived the client's socket timeout:
                # nothing arrived, and the layer is fine.
                continue
            except Exception as error:
                if not failing:
                    logger.error("channel layer unavailable, retrying: %s", error)
                failing = True
                if self._ready is not None and not self._ready.done():
                    # Do not hold up joins while the layer is down.
                    self._ready.set_result(None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                self._dispatch(message)
            except Exception:
                logger.exception("could not handle a channel layer message")

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("origin") == self.process_id:
            return  # handled here when it was sent
        message_id = message.get("id")
        if message_id is not None:
            if message_id in self._seen:
                return
            self._seen[message_id] = None
            if len(self._seen) > 1024:
                self._seen.popitem(last=False)
        handler = self._handlers.get(message.get("type"))  # type: ignore[arg-type]
        if handler is not None:
            handler(message)
