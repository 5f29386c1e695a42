"""
What a socket was sent, kept so that a client that reconnects gets exactly
what it missed.

With ``RECOVERY_WINDOW`` set, every event sent to a socket of a recoverable
channel carries an *offset* as its last argument: a string unique to that
emit (the id of the process that made it, and a counter). The client
remembers the last offset it received, and sends it back when it reconnects
(the official ``socket.io-client`` and ``rain.js`` both do).

Each such socket keeps a :class:`ReplayLog` of the events it was sent, in
the order it was sent them. Whatever the client missed is the part of the
log after its offset, so a recovery replays exactly that, in order, once,
wherever the events came from. A pong proves that the client read all that
was sent before its ping, so the log of a live socket is trimmed at every
pong and holds about one ping interval of events; once the socket is
gone, the log holds what it misses, up to ``RECOVERY_MAX_EVENTS`` events
and ``RECOVERY_MAX_BYTES`` bytes. The log remembers the offset of the last
event it dropped, so a client whose offset falls in what was dropped is told
it cannot recover instead of getting a replay with a hole in it.

The entries are shared: an event sent to a thousand sockets is one tuple,
referenced from a thousand logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import protocol
from .registry import registry

__all__ = ["SEQ", "OFFSET", "TEXT", "BUFFERS", "Entry", "Replay", "ReplayLog"]

#: An event as sent: (sequence number in this process, offset, text frame,
#: binary frames, size in bytes). The sequence number orders it against
#: pings; the offset names it to clients and to other processes. Made of
#: immutable values only, so that the garbage collector stops tracking it:
#: logs of many sockets hold many entries.
Entry = tuple[int, str, str, tuple[bytes, ...], int]
SEQ, OFFSET, TEXT, BUFFERS, SIZE = range(5)

#: Longest offset a client may send back: ours are 8 hex digits, ".", and a
#: hexadecimal counter.
MAX_OFFSET_LENGTH = 40


class Replay:
    """One process's side of recovery: offsets, entries, and which channels keep logs."""

    def __init__(self, process_id: str, max_events: int, max_bytes: int) -> None:
        self.process_id = process_id
        self.max_events = max_events
        self.max_bytes = max_bytes
        #: Entries made so far in this process; a ping records it, and its
        #: pong confirms every entry up to it.
        self.seq = 0
        self._covered: dict[str, bool] = {}

    def covers(self, channel: str) -> bool:
        """Whether events of ``channel`` carry offsets and are logged (its handlers did not opt out)."""
        covered = self._covered.get(channel)
        if covered is None:
            found = registry.get(channel)
            covered = self._covered[channel] = found is not None and found.recover
        return covered

    def encode(self, channel: str, data: list[Any]) -> Entry:
        """Encode the event ``data`` (name and arguments) with a new offset as its last argument."""
        self.seq += 1
        offset = f"{self.process_id}.{self.seq:x}"
        text, buffers = protocol.encode_packet(protocol.EVENT, channel, [*data, offset])
        return (self.seq, offset, text, tuple(buffers), _size(text, buffers))

    def entry(self, offset: str, text: str, buffers: Sequence[bytes]) -> Entry:
        """An entry for an event encoded elsewhere (another process, or a log handed over)."""
        self.seq += 1
        return (self.seq, offset, text, tuple(buffers), _size(text, buffers))

    def new_log(self) -> ReplayLog:
        return ReplayLog(self)


def _size(text: str, buffers: Sequence[bytes]) -> int:
    size = len(text)  # characters: close enough to bytes for a bound
    for buffer in buffers:
        size += len(buffer)
    return size


class ReplayLog:
    """The events sent to one socket that its client may not have read yet, oldest first."""

    __slots__ = ("entries", "replay", "size", "trimmed", "overflowed")

    def __init__(self, replay: Replay) -> None:
        self.replay = replay
        self.entries: list[Entry] = []
        self.size = 0
        #: The offset of the last entry dropped: the log holds every event
        #: sent after it. None while nothing was dropped.
        self.trimmed: str | None = None
        #: Whether entries were dropped unread, over the bounds.
        self.overflowed = False

    def add(self, entry: Entry) -> None:
        entries = self.entries
        entries.append(entry)
        self.size += entry[SIZE]
        replay = self.replay
        if len(entries) > replay.max_events or self.size > replay.max_bytes:
            count = 0
            while count < len(entries) - 1 and (
                len(entries) - count > replay.max_events or self.size > replay.max_bytes
            ):
                self.size -= entries[count][SIZE]
                count += 1
            self._drop(count)
            self.overflowed = True

    def confirm(self, seq: int) -> None:
        """The client read every entry up to ``seq`` (its pong came): drop them."""
        entries = self.entries
        count = 0
        while count < len(entries) and entries[count][SEQ] <= seq:
            self.size -= entries[count][SIZE]
            count += 1
        if count:
            self._drop(count)

    def resume(self, offset: str | None) -> bool:
        """
        Drop what the client says it has (everything up to ``offset``, its
        last event; None when it got none), leaving exactly what it missed.
        False when the log cannot tell: the offset is not one it holds or
        dropped last, or events were dropped and the client claims none.
        """
        if offset != self.trimmed:
            if offset is None:
                return False
            entries = self.entries
            for index, entry in enumerate(entries):
                if entry[OFFSET] == offset:
                    break
            else:
                return False
            for dropped in entries[: index + 1]:
                self.size -= dropped[SIZE]
            self._drop(index + 1)
        # What it dropped over the bounds, the client had.
        self.overflowed = False
        return True

    def _drop(self, count: int) -> None:
        self.trimmed = self.entries[count - 1][OFFSET]
        del self.entries[:count]


def valid_offset(value: Any) -> bool:
    """Whether a client's ``offset`` is a string that could be one of ours."""
    return isinstance(value, str) and 0 < len(value) <= MAX_OFFSET_LENGTH
