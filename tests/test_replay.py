"""
The replay log of one socket (rain_ws.replay): what it keeps, what a pong
or a client's offset drops, and when it must say it cannot replay.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from rain_ws import protocol
from rain_ws.conf import settings_problems
from rain_ws.replay import OFFSET, SEQ, Replay, ReplayLog

CHANNEL = "/rooms/1.0/room"


def sent(replay: Replay, log: ReplayLog, count: int) -> list[str]:
    """Log ``count`` events as sent to the socket; their offsets."""
    offsets = []
    for number in range(count):
        entry = replay.encode(CHANNEL, ["said", number])
        log.add(entry)
        offsets.append(entry[OFFSET])
    return offsets


def test_an_event_carries_its_offset_as_its_last_argument() -> None:
    replay = Replay("0a1b2c3d", 100, 1 << 20)
    entry = replay.encode(CHANNEL, ["said", "hi", b"\x00\x01"])
    text, buffers = entry[2], entry[3]
    packet = protocol.reconstruct(protocol.decode_packet(text[1:]), buffers)
    assert packet.data == ["said", "hi", b"\x00\x01", entry[OFFSET]]
    assert entry[OFFSET].startswith("0a1b2c3d.")
    assert replay.encode(CHANNEL, ["said"])[OFFSET] != entry[OFFSET]


def test_resume_keeps_exactly_what_follows_the_clients_offset() -> None:
    replay = Replay("0a1b2c3d", 100, 1 << 20)
    log = replay.new_log()
    offsets = sent(replay, log, 5)
    assert log.resume(offsets[1])
    assert [entry[OFFSET] for entry in log.entries] == offsets[2:]
    # The same offset again (a second recovery before any new event): the same rest.
    assert log.resume(offsets[1])
    assert [entry[OFFSET] for entry in log.entries] == offsets[2:]
    assert log.size == sum(entry[4] for entry in log.entries)


def test_a_client_that_got_nothing_recovers_everything_unless_some_was_dropped() -> None:
    replay = Replay("0a1b2c3d", 100, 1 << 20)
    log = replay.new_log()
    offsets = sent(replay, log, 3)
    assert log.resume(None)
    assert [entry[OFFSET] for entry in log.entries] == offsets
    log.confirm(log.entries[0][SEQ])
    assert not log.resume(None)


def test_a_pong_drops_what_was_sent_before_its_ping() -> None:
    replay = Replay("0a1b2c3d", 100, 1 << 20)
    log = replay.new_log()
    offsets = sent(replay, log, 3)
    ping = replay.seq
    later = sent(replay, log, 2)
    log.confirm(ping)
    assert [entry[OFFSET] for entry in log.entries] == later
    # The client's last event may be the last one the pong dropped.
    assert log.resume(offsets[-1])
    assert [entry[OFFSET] for entry in log.entries] == later
    # An older one is gone: no replay rather than one with a hole.
    assert not log.resume(offsets[0])


def test_over_its_bounds_the_log_drops_the_oldest_and_refuses_offsets_before_them() -> None:
    replay = Replay("0a1b2c3d", 3, 1 << 20)
    log = replay.new_log()
    offsets = sent(replay, log, 5)
    assert [entry[OFFSET] for entry in log.entries] == offsets[2:]
    assert log.overflowed
    assert not log.resume(offsets[0])
    assert log.resume(offsets[1])


def test_the_byte_bound_counts_every_event() -> None:
    replay = Replay("0a1b2c3d", 1000, 1024)
    log = replay.new_log()
    for _ in range(10):
        log.add(replay.encode(CHANNEL, ["said", "x" * 300]))
    each = log.entries[0][4]
    assert each > 300
    assert len(log.entries) == 1024 // each
    assert log.size == len(log.entries) * each


def test_an_unknown_offset_is_refused() -> None:
    replay = Replay("0a1b2c3d", 100, 1 << 20)
    log = replay.new_log()
    sent(replay, log, 2)
    assert not log.resume("ffffffff.1")


@pytest.mark.parametrize(
    ("value", "valid"),
    [(0, True), (2, True), (0.5, True), (86400, True), (-1, False), (86401, False), (True, False), ("120", False)],
)
def test_recovery_window_validation(value: object, valid: bool) -> None:
    with override_settings(RAIN_WS={"RECOVERY_WINDOW": value}):
        problems = settings_problems()
    assert (not problems) is valid, problems
