"""The UI in a real headless browser against the real app under uvicorn.

What the handler tests cannot see: that Gradio wires the components the way the
layout says, that the streamed reply and the cards reach the page, and what the
page looks like (a screenshot goes to artifacts/screenshots/). The browser is
found via MARQUEE_CHROMIUM, then a system Chromium on PATH, then Playwright's own
download; without one the test is skipped, except in CI (CI=true) where it fails.

The browser is looked for before the app starts: the check used to come after the
served app (bundle, Redis), so a missing Redis skipped first and the browser guard never
ran; and nothing set CI=true, so the guard's failure branch was dead code.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO_ROOT
from .requirements import missing

SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KIDS_GENRES = {"Animation", "Children", "Comedy"}
ANN = 7
NEIL = 2**40 + 17  # above every catalog id: a new person
TIMEOUT_MS = 45_000


def _browser_path() -> str | None:
    """A Chromium to drive; None means Playwright's own download (if installed)."""
    configured = os.environ.get("MARQUEE_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def accounts(tmp_path_factory) -> Path:
    """Two people: Ann acts as catalog user 7; Neil as a new user id (for onboarding)."""
    from app.security.users import add_user

    path = tmp_path_factory.mktemp("ui-users") / "users.toml"
    add_user(path, "ann", ANN, "user", "ann-password")
    add_user(path, "neil", NEIL, "user", "neil-password")
    return path


@pytest.fixture(scope="module")
def base_url(api_service, accounts: Path) -> Iterator[str]:
    """The real app (API + UI, lifespan, worker) under uvicorn on a free loopback port."""
    import uvicorn

    from ui.server import create_app

    port = _free_port()
    settings = api_service.settings.model_copy(update={"ui_users_file": accounts})
    app = create_app(api_service, settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-ui-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start within 60 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture(scope="module")
def chromium() -> str | None:
    """The browser to drive, checked before anything is served (see the module docstring)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[dev]')")
    configured = os.environ.get("MARQUEE_CHROMIUM")
    if configured and not Path(configured).is_file():
        missing(f"MARQUEE_CHROMIUM={configured} is not a file")
    path = _browser_path()
    if path is None:
        with sync_playwright() as p:
            if not Path(p.chromium.executable_path).is_file():
                missing("no Chromium found (set MARQUEE_CHROMIUM or install chromium)")
    return path


@pytest.fixture(scope="module")
def page(chromium: str | None, base_url: str):
    from playwright.sync_api import sync_playwright

    path = chromium
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def _cards(page, container: str) -> list[dict]:
    return page.eval_on_selector_all(
        f"{container} .mq-card",
        """cards => cards.map(c => ({
            id: Number(c.dataset.itemId),
            title: c.querySelector('.mq-title').innerText,
            genres: [...c.querySelectorAll('.mq-genre')].map(g => g.innerText),
            why: c.querySelector('.mq-why').innerText,
        }))""",
    )


def sign_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/ui/logout")  # whoever was signed in is not any more
    page.goto(f"{base_url}/ui/")
    page.get_by_label("username").fill(username)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.locator("#user-who").get_by_text(f"Signed in as {username}").wait_for()


def test_the_ui_shows_a_sign_in_form_and_refuses_a_wrong_password(page, base_url) -> None:
    page.goto(f"{base_url}/ui/logout")
    page.goto(f"{base_url}/ui/")
    page.get_by_label("password").wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "ui-sign-in.png"), full_page=True)
    assert page.locator("#chat-input").count() == 0  # nothing of the app before sign-in
    page.get_by_label("username").fill("ann")
    page.get_by_label("password").fill("wrong-password")
    page.get_by_role("button", name="Login").click()
    page.get_by_text("Incorrect Credentials").wait_for()
    assert page.locator("#chat-input").count() == 0


def test_chat_feed_thumbs_and_onboarding_in_a_browser(page, base_url) -> None:
    sign_in(page, base_url, "ann", "ann-password")
    assert f"user {ANN}:" in page.locator("#user-who").inner_text().lower()
    # no way to pick another user: the identity is the account's, held by the server
    assert page.locator("#user-id").count() == 0 and page.locator("#new-user").count() == 0
    box = page.locator("#chat-input textarea")
    box.fill("a funny animated movie for the kids")
    box.press("Enter")
    page.locator("#chat-cards .mq-card").first.wait_for()  # cards come before the reply ends
    page.locator('#chat-cards .mq-results[data-state="done"]').wait_for()
    reply = page.locator('#chat-log [data-testid="bot"]').last.inner_text().strip()
    assert reply and not reply.endswith("…"), reply
    cards = _cards(page, "#chat-cards")
    assert len(cards) == 8, cards  # the "How many picks" default
    for card in cards:
        assert card["title"].strip() and card["why"].strip()
        assert KIDS_GENRES & set(card["genres"]), card
    assert sum("Animation" in c["genres"] for c in cards) >= 4
    assert box.input_value() == "", "the message box clears once the turn is sent"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "ui-chat.png"), full_page=True)

    page.get_by_role("tab", name="Feed").click()
    page.locator("#feed-show").click()
    page.locator("#feed-cards .mq-card").first.wait_for()
    feed = _cards(page, "#feed-cards")
    assert len(feed) == 12 and len({c["id"] for c in feed}) == 12
    assert all(c["title"].strip() and c["genres"] and c["why"].strip() for c in feed)
    meta = page.locator("#feed-cards .mq-meta").inner_text()
    assert "personalized" in meta and f"User {ANN}" in meta
    page.screenshot(path=str(SCREENSHOTS / "ui-feed.png"), full_page=True)

    # Like the title the picker preselects (the first card): it leaves the next feed.
    liked = feed[0]["id"]
    page.locator("#feed-like").click()
    page.locator("#feed-note").get_by_text("Liked").wait_for()
    if "already reflects" in page.locator("#feed-note").inner_text():
        assert liked not in {c["id"] for c in _cards(page, "#feed-cards")}

    # The prompt lab is for admins: Ann's preview is refused.
    page.get_by_role("tab", name="Prompt lab").click()
    page.get_by_role("button", name="Preview").first.click()
    page.get_by_text("needs an admin account").first.wait_for()

    # Neil signs in: his own (new) page, nothing of Ann's, and onboarding makes it his.
    sign_in(page, base_url, "neil", "neil-password")
    page.get_by_role("tab", name="Feed").click()
    page.locator("#feed-show").click()
    page.locator("#feed-cards .mq-card").first.wait_for()
    meta = page.locator("#feed-cards .mq-meta").inner_text()
    assert f"User {NEIL}" in meta and f"User {ANN} " not in meta and "popularity" in meta
    assert "Because you watched" not in page.locator("#feed-cards").inner_text()
    page.locator("#onboarding").get_by_text("New here?").click()
    page.locator("#onboard-genres").get_by_label("Western", exact=True).check()
    page.locator("#onboard-create").click()
    page.locator("#onboard-note").get_by_text(f"Welcome, user {NEIL}").wait_for()
    fresh = _cards(page, "#feed-cards")
    assert sum("Western" in c["genres"] for c in fresh) >= len(fresh) // 2
    assert "onboarding" in page.locator("#feed-cards .mq-meta").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "ui-other-user.png"), full_page=True)
