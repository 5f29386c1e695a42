"""
Per-process metrics.

The hot path only bumps plain integers on :data:`metrics` and on each
channel's :class:`ChannelStats`; nothing is formatted or locked until a
scrape. :func:`render_prometheus` turns them into the Prometheus text format
through ``prometheus_client`` (the ``prometheus`` extra), for the view
:func:`rain_ws.views.metrics` that a project routes where it wants it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

__all__ = ["LATENCY_BUCKETS", "ChannelStats", "Metrics", "metrics", "render_prometheus"]

#: Upper bounds, in seconds, of the listener latency histogram's buckets.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ChannelStats:
    """Counters of one channel."""

    __slots__ = ("errors", "events_in", "events_out", "latency_buckets", "latency_count", "latency_sum", "sockets")

    def __init__(self) -> None:
        self.sockets = 0
        self.events_in = 0
        self.events_out = 0
        self.errors = 0
        # One count per bucket plus the +Inf bucket; not cumulative until rendered.
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_count = 0
        self.latency_sum = 0.0

    def observe(self, seconds: float) -> None:
        """Record how long a listener took."""
        self.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_count += 1
        self.latency_sum += seconds


class Metrics:
    """The counters of this process."""

    def __init__(self) -> None:
        self.connections = 0
        #: Open connections by the transport carrying them now.
        self.transports = {"websocket": 0, "polling": 0}
        self.reaped = 0
        self.refused = 0
        self.slow_closed = 0
        self.flood_closed = 0
        self.recovered = 0
        self.not_recovered = 0
        self.channels: dict[str, ChannelStats] = {}

    def channel(self, name: str) -> ChannelStats:
        stats = self.channels.get(name)
        if stats is None:
            stats = self.channels[name] = ChannelStats()
        return stats


metrics = Metrics()


def _families(idle_connections: int) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    yield GaugeMetricFamily("rain_ws_connections", "Open Engine.IO connections.", value=metrics.connections)
    by_transport = GaugeMetricFamily(
        "rain_ws_transport_connections", "Open connections by their transport.", labels=["transport"]
    )
    for transport, count in metrics.transports.items():
        by_transport.add_metric([transport], count)
    yield by_transport
    yield GaugeMetricFamily(
        "rain_ws_idle_connections",
        "Connections idle for IDLE_TIME (counted when the idle reaper is on).",
        value=idle_connections,
    )
    yield CounterMetricFamily("rain_ws_reaped", "Idle connections disconnected by the reaper.", value=metrics.reaped)
    yield CounterMetricFamily("rain_ws_refused", "Connections refused at MAX_CONNECTIONS.", value=metrics.refused)
    yield CounterMetricFamily(
        "rain_ws_slow_closed", "Connections closed for not reading (MAX_UNREAD_BYTES).", value=metrics.slow_closed
    )
    yield CounterMetricFamily(
        "rain_ws_flood_closed",
        "Connections closed for sending faster than their listeners (MAX_QUEUED_EVENTS, MAX_QUEUED_BYTES).",
        value=metrics.flood_closed,
    )
    yield CounterMetricFamily(
        "rain_ws_recovered", "Sockets recovered by their client within RECOVERY_WINDOW.", value=metrics.recovered
    )
    yield CounterMetricFamily(
        "rain_ws_not_recovered",
        "Clients that asked to recover a socket and got a fresh one (the log says why).",
        value=metrics.not_recovered,
    )
    sockets = GaugeMetricFamily("rain_ws_sockets", "Connected sockets per channel.", labels=["channel"])
    events_in = CounterMetricFamily("rain_ws_events_in", "Events received per channel.", labels=["channel"])
    events_out = CounterMetricFamily("rain_ws_events_out", "Events and acks sent per channel.", labels=["channel"])
    errors = CounterMetricFamily("rain_ws_handler_errors", "Handlers and listeners that raised.", labels=["channel"])
    latency = HistogramMetricFamily(
        "rain_ws_listener_seconds", "Time listeners took, per channel.", labels=["channel"]
    )
    for name, stats in sorted(metrics.channels.items()):
        sockets.add_metric([name], stats.sockets)
        events_in.add_metric([name], stats.events_in)
        events_out.add_metric([name], stats.events_out)
        errors.add_metric([name], stats.errors)
        cumulative = 0
        buckets = []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), stats.latency_buckets):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        latency.add_metric([name], buckets, stats.latency_sum)
    yield from (sockets, events_in, events_out, errors, latency)


class _Collector:
    def __init__(self, idle_connections: int) -> None:
        self.idle_connections = idle_connections

    def collect(self) -> Iterator[Any]:
        return _families(self.idle_connections)


def render_prometheus(idle_connections: int) -> tuple[bytes, str]:
    """The metrics in the Prometheus text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(idle_connections))
    return generate_latest(registry), CONTENT_TYPE_LATEST
