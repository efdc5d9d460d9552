"""A platform server for the browser tests, with the sample games installed.

Its own Daphne process (tests.live.LiveServer) rather than the shared `live`
one: the demo model here streams at a readable pace, so a test can watch the
narration grow, and game files live in a temporary MEDIA_ROOT that this test
process installs into and the server serves from.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.live import LiveServer

DEMO_TOKENS_PER_S = "60"


@pytest.fixture(scope="session")
def browser_media_root(tmp_path_factory):
    return tmp_path_factory.mktemp("browser-media")


@pytest.fixture(scope="session")
def browser_server(django_db_setup, django_db_blocker, browser_media_root):
    with django_db_blocker.unblock():
        server = LiveServer(
            {
                "MEDIA_ROOT": str(browser_media_root),
                "INFERENCE_DEFAULT_BACKEND": "demo",
                "INFERENCE_DEMO_TOKENS_PER_S": DEMO_TOKENS_PER_S,
                "RATE_LIMIT_PER_MINUTE": "10000",
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            }
        ).start()
    yield server
    server.stop()


@pytest.fixture
def site(browser_server, browser_media_root, transactional_db, settings):
    """The running platform with the sample games, committed for the server to see."""
    settings.MEDIA_ROOT = browser_media_root
    call_command("load_sample_games", verbosity=0)
    return browser_server


@pytest.fixture
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
