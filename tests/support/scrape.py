"""
Read a test server's rain_ws metrics through the test project's metrics view
(``/metrics/``), and wait on them.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import Server

__all__ = ["Scrape", "scrape", "wait_for_connections"]


class Scrape:
    """One scrape: the raw text and every sample's value, by sample name and labels."""

    def __init__(self, text: str, content_type: str) -> None:
        self.text = text
        self.content_type = content_type
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` with exactly ``labels``; ``KeyError`` if the scrape has none."""
        return self.samples[(name, frozenset(labels.items()))]


def _get(server: Server) -> Scrape:
    with urllib.request.urlopen(server.url + "/metrics/", timeout=5) as response:
        return Scrape(response.read().decode(), response.headers["Content-Type"])


async def scrape(server: Server) -> Scrape:
    """GET the metrics view without blocking the test's event loop."""
    return await asyncio.to_thread(_get, server)


async def wait_for_connections(server: Server, count: int, timeout: float = 5.0) -> Scrape:
    """
    Wait until the server holds exactly ``count`` connections: a connection a
    client closed is counted out once the server has handled its end.
    """
    deadline = time.monotonic() + timeout
    while True:
        current = await scrape(server)
        if current.value("rain_ws_connections") == count:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the server holds {current.value('rain_ws_connections'):.0f} connections, "
                f"not {count}, after {timeout} s"
            )
        await asyncio.sleep(0.05)
