"""
The example site in headless Chromium, against a real daphne serving
``example_project`` (``mysite.asgi``, which serves rain.js and the example's
static files while DEBUG is on): two guests chat, rooms, the seed's Talk
controller and its hello toast, sign-up and login, notes that survive a
reload, a logout in another tab sending the notes page to the login page,
the connection page, the idle reaper, and a phone-width layout.

Every wait is on a condition (Playwright's ``expect`` and ``wait_for_*``),
never a fixed sleep. The screenshots of docs/example.rst are made here
(written into docs/_static/screenshots/ with ``RAIN_WS_SCREENSHOTS=docs``).
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.browser import Tab, chromium, open_tab, requires_browser
from tests.support.servers import ROOT, Server, run_server
from tests.test_example_notes import manage
from tests.test_example_project import EXAMPLE

pytestmark = [pytest.mark.browser, requires_browser, pytest.mark.asyncio(loop_scope="module")]

#: Where the screenshots go: the docs' own when RAIN_WS_SCREENSHOTS=docs (to
#: update them after the pages change), else a temporary directory, so that a
#: test run leaves the checkout as it was.
SCREENSHOTS = (
    ROOT / "docs" / "_static" / "screenshots"
    if os.environ.get("RAIN_WS_SCREENSHOTS") == "docs"
    else Path(tempfile.mkdtemp(prefix="rain_ws-screenshots-"))
)
MAX_SCREENSHOT_BYTES = 150_000
TIMEOUT_MS = 10_000
PASSWORD = "example-browser-password"
USERS = ("ada", "grace")
#: rain.js asks the refresh view whether a session the server ended was
#: replaced; after a logout it was not, and Chromium logs the 401 answer.
REFRESH_401 = "the server responded with a status of 401"
#: A count above zero, for expect().to_have_text().
POSITIVE = re.compile(r"^[1-9][0-9]*$")


def expect(target: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(target)


def start_example(tmp_path_factory: pytest.TempPathFactory, **env: str) -> Iterator[Server]:
    """The example on daphne, with a migrated database of its own and the users of USERS."""
    database = tmp_path_factory.mktemp("example-browser") / "db.sqlite3"
    manage(database, "migrate", "--noinput")
    for username in USERS:
        manage(
            database,
            "createsuperuser",
            "--noinput",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
            env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD},
        )
    with run_server(
        settings="mysite.settings",
        application="mysite.asgi:application",
        env={"PYTHONPATH": f"{EXAMPLE}{os.pathsep}{ROOT}", "RAIN_WS_EXAMPLE_DB": str(database), **env},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_example(tmp_path_factory)


@pytest.fixture(scope="module")
def reaping_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The example with its idle reaper on: a page quiet for 2 s is disconnected."""
    yield from start_example(tmp_path_factory, RAIN_WS_EXAMPLE_IDLE_TIME="2")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as browser:
        yield browser


class Tabs:
    """Opens pages, each in a browser context of its own unless told, and checks them on exit."""

    def __init__(self, browser: Any, server: Server) -> None:
        self.browser = browser
        self.server = server
        self.tabs: list[Tab] = []
        self.requests: list[str] = []
        self.expected_errors: list[str] = []

    async def open(self, path: str = "/", width: int = 1100, height: int = 760, same_as: Tab | None = None) -> Tab:
        if same_as is None:
            tab = await open_tab(self.browser, self.server.url)
        else:
            # Another tab of the same browser: the same cookies.
            tab = Tab(await same_as.page.context.new_page())
            tab.page.on("console", lambda message: message.type == "error" and tab.errors.append(message.text))
            tab.page.on("pageerror", lambda error: tab.uncaught.append(str(error)))
        tab.page.set_default_timeout(TIMEOUT_MS)
        tab.page.on("request", lambda request: self.requests.append(request.url))
        await tab.page.set_viewport_size({"width": width, "height": height})
        self.tabs.append(tab)
        if path:
            await tab.page.goto(path)
        return tab

    async def close(self) -> None:
        contexts = {id(tab.page.context): tab.page.context for tab in self.tabs}
        for context in contexts.values():
            await context.close()
        for tab in self.tabs:
            assert tab.uncaught == []
            unexpected = [error for error in tab.errors if not any(ok in error for ok in self.expected_errors)]
            assert unexpected == []
        # Nothing came from another host: the site works offline.
        foreign = [url for url in self.requests if not url.startswith((self.server.url, self.server.ws_url, "data:"))]
        assert foreign == []


@pytest_asyncio.fixture(loop_scope="module")
async def tabs(browser: Any, server: Server) -> AsyncIterator[Tabs]:
    tabs = Tabs(browser, server)
    yield tabs
    await tabs.close()


# -- helpers -------------------------------------------------------------------


def messages(tab: Tab) -> Any:
    """The visible conversation's list."""
    return tab.page.locator(".message-list:visible")


async def wait_online(tab: Tab) -> None:
    await expect(tab.page.locator("[data-status]")).to_have_attribute("data-state", "online")


async def say(tab: Tab, text: str, with_button: bool = False) -> None:
    box = tab.page.get_by_label("Message", exact=True)
    await box.fill(text)
    if with_button:
        await tab.page.get_by_role("button", name="Send", exact=True).click()
    else:
        await box.press("Enter")
    await expect(box).to_have_value("")


async def guest_name(tab: Tab) -> str:
    return await tab.page.locator("[data-itemid='name']").inner_text()


async def log_in(tab: Tab, username: str, path: str = "/accounts/login/") -> None:
    page = tab.page
    await page.goto(path)
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("[data-testid='account-name']")).to_have_text(username)


async def dismiss_toasts(tab: Tab) -> None:
    for close in await tab.page.locator(".toast-close").all():
        await close.click()
    await expect(tab.page.locator(".toast")).to_have_count(0)


def save_screenshot(name: str, png: bytes) -> Path:
    assert png.startswith(b"\x89PNG"), name
    assert len(png) < MAX_SCREENSHOT_BYTES, f"{name} is {len(png)} bytes"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    path.write_bytes(png)
    return path


# -- chat ----------------------------------------------------------------------


async def test_two_guests_chat_with_enter_and_the_send_button(tabs: Tabs) -> None:
    ada = await tabs.open("/")
    bob = await tabs.open("/")
    for tab in (ada, bob):
        # The page gave the browser a session: no login, no set-up.
        await wait_online(tab)
    ada_name, bob_name = await guest_name(ada), await guest_name(bob)
    assert ada_name != bob_name
    assert ada_name.startswith("Guest ")

    await say(ada, "Hello from Ada")
    line = messages(bob).locator(".message", has_text="Hello from Ada")
    await expect(line).to_be_visible()
    await expect(line.locator(".author")).to_have_text(ada_name)
    await expect(messages(ada).locator(".message.mine", has_text="Hello from Ada")).to_be_visible()

    await say(bob, "Hi Ada, Bob here", with_button=True)
    line = messages(ada).locator(".message", has_text="Hi Ada, Bob here")
    await expect(line).to_be_visible()
    await expect(line.locator(".author")).to_have_text(bob_name)


async def test_rooms(tabs: Tabs) -> None:
    ada = await tabs.open("/")
    bob = await tabs.open("/")
    carol = await tabs.open("/")
    for tab in (ada, bob, carol):
        await wait_online(tab)
    bob_name = await guest_name(bob)

    # Ada joins a suggested room; Bob types a room's name into the join form.
    await ada.page.get_by_role("button", name="# lobby").click()
    await expect(ada.page.locator("#conversation-title")).to_have_text("# lobby")
    await bob.page.get_by_label("Join a room").fill("lobby")
    await bob.page.get_by_label("Join a room").press("Enter")
    await expect(bob.page.locator("#conversation-title")).to_have_text("# lobby")
    await expect(messages(ada).get_by_text(f"{bob_name} joined # lobby")).to_be_visible()

    await say(bob, "Only the lobby hears this")
    await expect(messages(ada).locator(".message", has_text="Only the lobby hears this")).to_be_visible()
    await expect(messages(bob).locator(".message.mine", has_text="Only the lobby hears this")).to_be_visible()

    # Carol joined no room. Bob's next line goes to everyone; once Carol has
    # it, she would have had the lobby's line before it.
    await bob.page.get_by_role("button", name="# everyone").click()
    await say(bob, "Now everyone hears this")
    await expect(messages(carol).locator(".message", has_text="Now everyone hears this")).to_be_visible()
    await expect(carol.page.get_by_text("Only the lobby hears this")).to_have_count(0)

    # Ada, in the lobby, sees the count of what she missed in # everyone.
    badge = ada.page.get_by_role("button", name="# everyone").locator(".badge")
    await expect(badge).to_have_text("1")
    await ada.page.get_by_role("button", name="# everyone").click()
    await expect(badge).to_be_hidden()
    await expect(messages(ada).locator(".message", has_text="Now everyone hears this")).to_be_visible()

    # Leaving tells the room.
    await ada.page.get_by_role("button", name="# lobby").click()
    await ada.page.get_by_role("button", name="Leave").click()
    await expect(ada.page.locator("#conversation-title")).to_have_text("# everyone")
    await bob.page.get_by_role("button", name="# lobby").click()
    await expect(messages(bob).get_by_text(f"{await guest_name(ada)} left # lobby")).to_be_visible()


async def test_talk_button_and_hello_toast(tabs: Tabs) -> None:
    ada = await tabs.open("/")
    # The seed's configureSocket: the server's hello, shown as a toast.
    await expect(ada.page.locator(".toast", has_text="Hello Sockets!")).to_be_visible()
    bob = await tabs.open("/")
    await expect(bob.page.locator(".toast", has_text="Hello Sockets!")).to_be_visible()
    await wait_online(ada)

    # The seed's start(): Talk emits new-message {text: 'Welcome!'}, and the
    # other tab hears it.
    await ada.page.locator("input[data-itemid='btnCustomHandler']").click()
    line = messages(bob).locator(".message", has_text="Welcome!")
    await expect(line).to_be_visible()
    await expect(line.locator(".author")).to_have_text(await guest_name(ada))
    await expect(messages(ada).locator(".message.mine", has_text="Welcome!")).to_be_visible()


async def test_chat_fits_a_phone(tabs: Tabs) -> None:
    phone = await tabs.open("/", width=390, height=800)
    await wait_online(phone)
    width = await phone.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390
    for control in ("Message", "Join a room"):
        box = await phone.page.get_by_label(control, exact=True).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, control
    send = await phone.page.get_by_role("button", name="Send", exact=True).bounding_box()
    assert send is not None and send["x"] + send["width"] <= 390
    await say(phone, "Typed on a phone")
    await expect(messages(phone).locator(".message.mine", has_text="Typed on a phone")).to_be_visible()


# -- notes ---------------------------------------------------------------------


async def test_sign_up_then_a_note_survives_a_reload(tabs: Tabs) -> None:
    tab = await tabs.open("/notes/")
    page = tab.page
    # The notes are for users: the login page, which links to the sign-up form.
    await expect(page).to_have_url(f"{tabs.server.url}/accounts/login/?next=/notes/")
    await page.get_by_role("main").get_by_role("link", name="sign up").click()
    await page.get_by_label("Username").fill("newcomer")
    await page.locator("#id_password1").fill(PASSWORD)
    await page.locator("#id_password2").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await expect(page).to_have_url(f"{tabs.server.url}/notes/")
    await expect(page.locator("[data-testid='account-name']")).to_have_text("newcomer")
    await wait_online(tab)

    note = page.get_by_label("New note")
    await note.fill("Water the plants")
    await note.press("Enter")
    await expect(page.locator(".note-text")).to_have_text(["Water the plants"])
    await note.fill("Call <b>Grace</b>")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".note-text")).to_have_text(["Water the plants", "Call <b>Grace</b>"])
    await expect(page.locator("[data-itemid='count']")).to_have_text("2 notes")

    # Django renders the page from the session the socket saved.
    await page.reload()
    await expect(page.locator(".note-text")).to_have_text(["Water the plants", "Call <b>Grace</b>"])
    await page.locator(".note", has_text="Water the plants").get_by_role("button", name="Remove").click()
    await expect(page.locator(".note-text")).to_have_text(["Call <b>Grace</b>"])
    await page.reload()
    await expect(page.locator(".note-text")).to_have_text(["Call <b>Grace</b>"])


async def test_logout_in_another_tab_sends_the_notes_page_to_login(tabs: Tabs) -> None:
    tabs.expected_errors.append(REFRESH_401)
    notes = await tabs.open("")
    await log_in(notes, "ada", "/accounts/login/?next=/notes/")
    await expect(notes.page).to_have_url(f"{tabs.server.url}/notes/")
    await wait_online(notes)
    await notes.page.get_by_label("New note").fill("Gone with the session")
    await notes.page.get_by_label("New note").press("Enter")
    await expect(notes.page.locator(".note-text")).to_have_text(["Gone with the session"])

    other = await tabs.open("/", same_as=notes)
    await other.page.get_by_role("button", name="Log out").click()
    await expect(other.page).to_have_url(f"{tabs.server.url}/accounts/login/")

    # The server ended the notes page's sockets; rain.js found no live
    # session and published session_expired; the controller went to login.
    await expect(notes.page).to_have_url(f"{tabs.server.url}/accounts/login/?next=/notes/")
    await log_in(notes, "ada", "/accounts/login/?next=/notes/")
    await expect(notes.page.locator(".empty")).to_be_visible()
    await expect(notes.page.locator(".note-text")).to_have_count(0)


# -- the connection page ---------------------------------------------------------


async def test_connection_page_shows_the_transport(tabs: Tabs) -> None:
    tab = await tabs.open("/state/")
    page = tab.page
    chat = page.locator("[data-channel='/chat/1.0/chat']")
    await expect(chat.locator("[data-field='state']")).to_have_text("connected")
    await expect(page.locator("[data-itemid='transport']")).to_have_text("websocket")
    await expect(page.locator("[data-itemid='wsState']")).to_have_text("open")
    await expect(page.locator("[data-itemid='url']")).to_have_text(
        f"{tabs.server.ws_url}/socket.io/?EIO=4&transport=websocket"
    )
    await expect(chat.locator("[data-field='id']")).not_to_have_text("–")
    await expect(page.locator("[data-itemid='reaper']")).to_have_text("off")
    await expect(page.locator("[data-itemid='connections']")).to_have_text(POSITIVE)
    await expect(page.locator("[data-itemid='log']")).to_contain_text("hello")
    assert len(tab.websockets) == 1

    # Disconnect from the page's side, then emit: rain.js connects again.
    await chat.get_by_role("button", name="Disconnect").click()
    await expect(chat.locator("[data-field='state']")).to_have_text("disconnected")
    await expect(page.locator("[data-itemid='wsState']")).to_have_text("closed: no channel is connected")
    await chat.get_by_role("button", name="Emit").click()
    await expect(chat.locator("[data-field='answer']")).to_contain_text('whoami answered {"id":')
    await expect(chat.locator("[data-field='state']")).to_have_text("connected")
    await expect(chat.locator("[data-field='reconnects']")).to_have_text("1")
    await expect(chat.locator("[data-field='connects']")).to_have_text("2")


async def test_connection_page_of_a_user_has_both_channels(tabs: Tabs) -> None:
    tab = await tabs.open("")
    await log_in(tab, "grace", "/accounts/login/?next=/state/")
    await expect(tab.page).to_have_url(f"{tabs.server.url}/state/")
    for channel in ("/chat/1.0/chat", "/notes/1.0/notes"):
        card = tab.page.locator(f"[data-channel='{channel}']")
        await expect(card.locator("[data-field='state']")).to_have_text("connected")
    # Every channel of the page on one WebSocket.
    assert len(tab.websockets) == 1


async def test_idle_reap_shows_on_the_connection_page(browser: Any, reaping_server: Server) -> None:
    tabs = Tabs(browser, reaping_server)
    try:
        tab = await tabs.open("/state/")
        page = tab.page
        chat = page.locator("[data-channel='/chat/1.0/chat']")
        await expect(page.locator("[data-itemid='reaper']")).to_have_text("on: idle for 2 s, from 0 connections")
        # Quiet for 2 s: the server's reaper disconnects the page.
        await expect(chat.locator("[data-field='serverDisconnects']")).to_have_text("1")
        await expect(chat.locator("[data-field='state']")).to_have_text("disconnected by the server")
        await expect(page.locator("[data-itemid='reaped']")).not_to_have_text("0")
        await expect(page.locator("[data-itemid='reaped']")).to_have_text(POSITIVE)
        # The next emit connects it again, and is answered.
        await chat.get_by_role("button", name="Emit").click()
        await expect(chat.locator("[data-field='answer']")).to_contain_text('whoami answered {"id":')
        await expect(chat.locator("[data-field='reconnects']")).to_have_text("1")
    finally:
        await tabs.close()


# -- screenshots for docs/example.rst ------------------------------------------------


async def test_screenshots_for_the_docs(tabs: Tabs) -> None:
    """
    docs/_static/screenshots/: the chat of two users side by side, the
    notes page and the connection page, as the tests above drive them.
    """
    width, height = 760, 600
    ada = await tabs.open("", width=width, height=height)
    grace = await tabs.open("", width=width, height=height)
    await log_in(ada, "ada")
    await log_in(grace, "grace")
    for tab in (ada, grace):
        await tab.page.goto("/")
        await wait_online(tab)
        await tab.page.get_by_role("button", name="# lobby").click()
        await expect(tab.page.locator("#conversation-title")).to_have_text("# lobby")
    await expect(messages(ada).get_by_text("grace joined # lobby")).to_be_visible()
    await say(ada, "Hi Grace! Two browsers, one room.")
    await expect(messages(grace).get_by_text("Hi Grace! Two browsers, one room.")).to_be_visible()
    await say(grace, "Hi Ada. Rooms work across tabs and processes.")
    await expect(messages(ada).get_by_text("Rooms work across tabs and processes.")).to_be_visible()
    await say(ada, "And rain.js reconnects by itself.")
    await expect(messages(grace).get_by_text("And rain.js reconnects by itself.")).to_be_visible()
    shots = []
    for tab in (ada, grace):
        await dismiss_toasts(tab)
        await tab.page.locator("#message").blur()
        await tab.page.evaluate("() => window.scrollTo(0, 0)")
        shots.append(base64.b64encode(await tab.page.screenshot()).decode())

    # The two windows side by side, laid out by the browser itself.
    board = await tabs.open("", width=2 * width + 36, height=height + 24)
    await board.page.set_content(
        '<body style="margin:0;padding:12px;background:#c8cfdc;display:flex;gap:12px">'
        + "".join(
            f'<img alt="" width="{width}" height="{height}" style="border-radius:8px"'
            f' src="data:image/png;base64,{shot}">'
            for shot in shots
        )
        + "</body>"
    )
    await board.page.wait_for_function("() => [...document.images].every((image) => image.complete)")
    save_screenshot("chat.png", await board.page.screenshot())

    await ada.page.set_viewport_size({"width": 900, "height": 620})
    await ada.page.goto("/notes/")
    await wait_online(ada)
    for text in ("Read docs/example.rst", "Open the connection page"):
        await ada.page.get_by_label("New note").fill(text)
        await ada.page.get_by_label("New note").press("Enter")
        await expect(ada.page.locator(".note-text", has_text=text)).to_be_visible()
    await dismiss_toasts(ada)
    await ada.page.get_by_label("New note").blur()
    save_screenshot("notes.png", await ada.page.screenshot())

    await ada.page.set_viewport_size({"width": 900, "height": 1000})
    await ada.page.goto("/state/")
    for channel in ("/chat/1.0/chat", "/notes/1.0/notes"):
        card = ada.page.locator(f"[data-channel='{channel}']")
        await expect(card.locator("[data-field='state']")).to_have_text("connected")
    await expect(ada.page.locator("[data-itemid='connections']")).to_have_text(POSITIVE)
    await dismiss_toasts(ada)
    save_screenshot("state.png", await ada.page.screenshot())
