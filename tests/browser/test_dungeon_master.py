"""The Dungeon Master in a real browser: sign in, play, watch the narration
stream, find the request on the usage dashboard; and the game's sandbox.

Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, against a
platform server in its own process. Skipped when Chromium is missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
# Every run leaves its screenshots in test-artifacts/ (git-ignored);
# `make screenshots` refreshes the README's copies in docs/screenshots/.
SCREENSHOTS = ROOT / (
    "docs/screenshots" if os.environ.get("VGP_UPDATE_SCREENSHOTS") == "1" else "test-artifacts"
)
VIEWPORT = {"width": 1120, "height": 720}


@pytest.fixture
def hero(site, settings):
    # The server checks passwords with the project's own hashers.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    return UserFactory(username="aria", password=PASSWORD)


@pytest.fixture
def bram(hero):
    # Made before the browser starts: Playwright's event loop keeps the ORM out.
    return UserFactory(username="bram", password=PASSWORD)


def sign_in(page, site, username: str = "aria") -> None:
    page.goto(f"{site.url}/accounts/login/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def growing_text(locator, *, samples: int = 3, every_s: float = 0.25) -> list[int]:
    """The locator's text length, sampled while it streams."""
    lengths = []
    for _ in range(samples):
        lengths.append(len(locator.inner_text()))
        time.sleep(every_s)
    return lengths


def test_it_plays_the_dungeon_master_and_counts_the_tokens(site, hero, chromium):
    page = chromium.new_page(viewport=VIEWPORT)
    sign_in(page, site)
    page.goto(f"{site.url}/games/dungeon-master/")
    game = page.frame_locator("#game-frame")
    game.locator("#hero-name").fill("Aria the Bold")
    game.locator("#new-game").click()

    # The opening scene streams in: the narration grows while it is told.
    opening = game.locator(".entry.dm").first
    opening.wait_for()
    game.locator(".entry.dm.cursor").wait_for()
    lengths = growing_text(opening)
    assert lengths[0] < lengths[-1], lengths
    game.locator(".entry.dm.cursor").wait_for(state="detached", timeout=20_000)

    # A player's action, then the DM's answer, streamed.
    game.locator("#action").fill("I raise my torch and step into the dark.")
    game.locator("#send").click()
    game.locator(".entry.player", has_text="step into the dark").wait_for()
    answer = game.locator(".entry.dm").nth(1)
    answer.wait_for()
    lengths = growing_text(answer)
    assert lengths[0] < lengths[-1], lengths
    game.locator(".entry.dm.cursor").wait_for(state="detached", timeout=20_000)
    assert "What do you do?" in answer.inner_text()
    assert game.locator("#stat-tokens").inner_text() != "0"
    page.evaluate("window.scrollTo(0, 0)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dungeon-master.png"))

    # Both turns are on the dashboard, under the game.
    page.goto(f"{site.url}/usage/")
    by_game = page.locator("section[aria-labelledby=usage-games]")
    row = by_game.locator("tr", has_text="Dungeon Master")
    assert row.locator("td").nth(1).inner_text() == "2"
    assert page.locator("code", has_text="demo-storyteller").first.is_visible()
    page.screenshot(path=str(SCREENSHOTS / "usage.png"), full_page=True)


def test_it_keeps_the_players_credentials_out_of_the_game(site, hero, chromium):
    page = chromium.new_page(viewport=VIEWPORT)
    sign_in(page, site)
    page.goto(f"{site.url}/games/dungeon-master/")
    frame_element = page.wait_for_selector("#game-frame")
    frame = frame_element.content_frame()
    frame.wait_for_selector("#new-game")

    # The page itself is signed in: its cookies reach the API.
    assert any(c["name"] == "sessionid" for c in page.context.cookies())
    assert page.evaluate("() => fetch('/api/inference/usage').then(r => r.status)") == 200

    # The game's frame has an opaque origin: no cookies, no storage, no network.
    assert frame.evaluate("() => self.origin") == "null"
    cookie = frame.evaluate(
        "() => { try { return document.cookie; } catch (e) { return 'threw ' + e.name; } }"
    )
    assert cookie in ("", "threw SecurityError")
    storage = frame.evaluate(
        "() => { try { localStorage.length; return 'readable'; } catch (e) { return e.name; } }"
    )
    assert storage == "SecurityError"
    fetched = frame.evaluate(
        """async () => {
            try {
                const response = await fetch('/api/inference/usage', {credentials: 'include'});
                return response.status;
            } catch (e) {
                return 'blocked';
            }
        }"""
    )
    assert fetched in ("blocked", 401)
    parent = frame.evaluate(
        "() => { try { return parent.document.cookie; } catch (e) { return e.name; } }"
    )
    assert parent == "SecurityError"


def test_it_shows_each_player_the_others_turns(site, hero, bram, chromium):
    aria_page = chromium.new_context(viewport=VIEWPORT).new_page()
    bram_page = chromium.new_context(viewport=VIEWPORT).new_page()
    sign_in(aria_page, site)
    sign_in(bram_page, site, username="bram")

    aria_page.goto(f"{site.url}/games/dungeon-master/")
    aria = aria_page.frame_locator("#game-frame")
    aria.locator("#hero-name").fill("Aria")
    aria.locator("#new-game").click()
    aria.locator(".entry.dm").first.wait_for()
    aria.locator(".entry.dm.cursor").wait_for(state="detached", timeout=20_000)
    aria.locator("#invite-name").fill("bram")
    aria.locator("#invite-send").click()
    aria.locator("#invite-status", has_text="bram is invited").wait_for()
    code = aria.locator("#share-code").input_value()

    bram_page.goto(f"{site.url}/games/dungeon-master/")
    bram = bram_page.frame_locator("#game-frame")
    bram.locator("#hero-name").fill("Bram")
    bram.locator("#hero-class").select_option("Rogue")
    bram.locator("#room-code").fill(code)
    bram.locator("#join-game").click()
    # Bram sees the story so far, then takes his first turn ("I join the party")...
    bram.locator(".entry.player", has_text="Begin the adventure").wait_for()
    # ...and Aria sees his action and the narration of it as it streams.
    aria.locator(".entry.player", has_text="I join the party").wait_for(timeout=10_000)
    narration = aria.locator(".entry.dm").nth(1)
    narration.wait_for()
    bram.locator(".entry.dm.cursor").wait_for(state="detached", timeout=20_000)
    aria.locator(".entry.dm.cursor").wait_for(state="detached", timeout=10_000)
    told_to_bram = bram.locator(".entry.dm").last.inner_text()
    assert narration.inner_text() == told_to_bram and told_to_bram
    assert aria.locator("#party").inner_text().count("·") == 2

    # Aria's next turn reaches Bram the same way.
    aria.locator("[data-quick='I look around carefully.']").click()
    bram.locator(".entry.player", has_text="I look around carefully.").wait_for(timeout=10_000)
    aria.locator(".entry.dm.cursor").wait_for(state="detached", timeout=20_000)
    bram.locator(".entry.dm.cursor").wait_for(state="detached", timeout=10_000)
    assert (
        bram.locator(".entry.dm").last.inner_text() == aria.locator(".entry.dm").last.inner_text()
    )
