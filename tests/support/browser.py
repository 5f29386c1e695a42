"""Headless Chromium for the browser tests, through Playwright's async API."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.recording import WAIT

#: The runtime the pages load.
RAIN_JS = Path(__file__).resolve().parents[2] / "rain_ws" / "static" / "rain_ws" / "rain.js"
#: rain_ws's session refresh view, which the runtime's keepalive posts to.
REFRESH = "/rain_ws/session/refresh/"
#: SESSION_COOKIE_AGE of tests.project.browser.settings, in seconds.
COOKIE_AGE = 6

#: JavaScript that opens /browser/1.0/counter as window.counter and records
#: what happens to it in window.seen.
OPEN_COUNTER = """() => {
    window.seen = {connects: 0, reasons: [], errors: [], events: []};
    const socket = window.counter = rain.context("browser", "1.0").messaging.getSocket("counter");
    socket.on("connect", () => seen.connects++);
    socket.on("disconnect", (reason) => seen.reasons.push(reason));
    socket.on("connect_error", (error) => seen.errors.push(error.message));
    socket.on("session_expired", () => seen.events.push("session_expired"));
}"""

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

#: Playwright cannot download its own browser here: it drives Debian's, kept
#: off the network except for the test servers on 127.0.0.1.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]


def _missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[test]' (scripts/run_tests.sh does)"
    if shutil.which("chromium") is None:
        return "chromium is not installed: apt-get install chromium (scripts/run_tests.sh does, as root)"
    return None


_MISSING = _missing()

#: Skips a test, with the reason, when Playwright or Chromium is missing.
requires_browser = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium, closed on exit."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Tab:
    """
    A page and what it showed: console errors, uncaught exceptions, the
    WebSockets it opened and the alerts it raised (accepted at once).
    """

    page: Any
    errors: list[str] = field(default_factory=list)
    uncaught: list[str] = field(default_factory=list)
    websockets: list[Any] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)

    def errors_with(self, text: str) -> list[str]:
        return [error for error in self.errors if text in error]


async def open_tab(browser: Any, base_url: str | None = None) -> Tab:
    """A page in a context of its own (its own cookies), with its recorders."""
    context = await browser.new_context(base_url=base_url)
    tab = Tab(await context.new_page())

    def on_console(message: Any) -> None:
        # Chromium asks every server for a favicon, and logs the 404.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            tab.errors.append(message.text)

    async def on_dialog(dialog: Any) -> None:
        tab.alerts.append(dialog.message)
        await dialog.accept()

    tab.page.on("console", on_console)
    tab.page.on("pageerror", lambda error: tab.uncaught.append(str(error)))
    tab.page.on("websocket", lambda ws: tab.websockets.append(ws))
    tab.page.on("dialog", on_dialog)
    return tab


def key() -> str:
    """A key of its own for the counter channel, which counts per key."""
    return uuid.uuid4().hex


async def page_until(tab: Tab, expression: str, what: str, timeout: float = WAIT, arg: Any = None) -> None:
    """
    Wait until the JavaScript ``expression`` (a function, given ``arg``) is
    truthy in the page; fail with ``what`` and the page's console errors
    after ``timeout`` seconds.
    """
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        await tab.page.wait_for_function(expression, arg=arg, timeout=timeout * 1000)
    except PlaywrightTimeout:
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what} ({expression}); console errors: {tab.errors}"
        ) from None
