"""Headless Chromium for the browser tests, through Playwright's async API."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

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
