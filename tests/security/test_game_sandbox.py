"""Game sandbox isolation against a malicious game uploaded by a publisher.

Every file of a game is served with a CSP that sandboxes it into an opaque
origin (`sandbox allow-scripts`, never `allow-same-origin`) with no network
(`connect-src 'none'`) and `nosniff`, whether it is loaded by the play page's
frame or opened on its own; the play page frames it with
`sandbox="allow-scripts"` only; the game-session token stays in the play page
(never in the game's files or the frame's URL); and the host bridge only
listens to its own frame. The bridge's behaviour in a browser is covered by
tests/browser; here is what the server and the shipped source show.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from games import services as game_services
from tests.security.conftest import INDEX, make_zip

pytestmark = pytest.mark.django_db

EVIL = {
    "index.html": INDEX,
    "game.js": b"fetch('/api/inference/usage'); document.cookie;",
    "evil.html": b"<script>parent.document.cookie</script>",
    "image.svg": b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
    "data.json": b"{}",
    "sniff.txt": b"<html><script>alert(1)</script></html>",
}


@pytest.fixture
def evil_game(owner):
    from games.validation import validate_game_package

    return game_services.game_create(
        slug="evil", owner=owner, package=validate_game_package(make_zip(EVIL)), title="Evil"
    )


def _play(client, game) -> tuple[str, str, str]:
    """The play page, its frame's URL and the game-session token it holds."""
    page = client.get(f"/games/{game.slug}/").content.decode()
    config = re.search(
        r'<script id="vgp-bridge-config" type="application/json">(.*?)</script>', page
    )
    frame_url = re.search(r'<iframe[^>]*\bsrc="([^"]+)"', page).group(1).replace("&amp;", "&")
    return page, frame_url, json.loads(config.group(1))["token"]


def _directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


def test_it_sandboxes_every_file_of_a_game(owner, friend, evil_game):
    client = Client()
    client.force_login(friend)
    _, frame_url, _ = _play(client, evil_game)
    run_base = frame_url.rsplit("/", 1)[0].split("?")[0]
    for name in EVIL:
        # Through the frame's URL, and opened on its own (a top-level page,
        # same origin as the player's cookies: the sandbox matters most there).
        for url in (f"{run_base}/{name}", f"/games/{evil_game.slug}/files/{name}"):
            response = Client().get(url) if "/run/" in url else client.get(url)
            assert response.status_code == 200, url
            directives = _directives(response)
            assert directives["sandbox"] == "sandbox allow-scripts", url
            assert "allow-same-origin" not in response["Content-Security-Policy"]
            assert directives["connect-src"] == "connect-src 'none'"
            assert directives["form-action"] == "form-action 'none'"
            assert response["X-Content-Type-Options"] == "nosniff"
            assert response["Referrer-Policy"] == "no-referrer"
    # A text file is text, whatever it holds.
    sniff = client.get(f"/games/{evil_game.slug}/files/sniff.txt")
    assert sniff["Content-Type"].startswith("text/plain")


def test_it_frames_the_game_with_allow_scripts_only(owner, friend, outsider, evil_game):
    for user in (owner, friend, outsider):
        client = Client()
        client.force_login(user)
        page, _, _ = _play(client, evil_game)
        [frame] = re.findall(r"<iframe[^>]*>", page)
        assert re.findall(r'\bsandbox="([^"]*)"', frame) == ["allow-scripts"]
        assert 'referrerpolicy="no-referrer"' in frame


def test_it_keeps_the_game_token_out_of_the_frame(owner, friend, evil_game):
    client = Client()
    client.force_login(friend)
    page, frame_url, token = _play(client, evil_game)
    assert token.startswith("vgp_")
    assert token not in frame_url
    # The token is in the play page's bridge configuration, and only there.
    assert page.count(token) == 1
    run_base = frame_url.rsplit("/", 1)[0].split("?")[0]
    for name in EVIL:
        for response in (
            Client().get(f"{run_base}/{name}"),
            client.get(f"/games/evil/files/{name}"),
        ):
            assert token.encode() not in b"".join(response.streaming_content)
    # Nor is it anywhere under the game's folder on disk.
    folder = Path(settings.MEDIA_ROOT) / "games" / evil_game.slug
    for path in folder.rglob("*"):
        assert token.encode() not in path.read_bytes()


def test_it_lets_the_frame_open_no_session_url(friend, evil_game):
    """The frame's requests carry no cookie (opaque origin); its run key opens
    only this game's files, never the player's pages or API."""
    client = Client()
    client.force_login(friend)
    _, frame_url, _ = _play(client, evil_game)
    key = frame_url.split("/run/")[1].split("/")[0]
    anonymous = Client()
    assert anonymous.get(f"/api/inference/usage?key={key}").status_code == 401
    assert anonymous.get(f"/games/{evil_game.slug}/run/{key}/../../tokens/").status_code == 404


STATIC = Path(settings.BASE_DIR) / "static" / "vgp"


def test_the_host_bridge_listens_to_its_frame_only():
    source = (STATIC / "host-bridge.js").read_text()
    listeners = re.findall(r'addEventListener\("message",[\s\S]*?\n\}\);', source)
    assert len(listeners) == 1, "one message listener, the guarded one"
    # Its first statement drops anything not sent by the game's frame.
    body = listeners[0].split("{", 1)[1].strip().splitlines()
    code = [line.strip() for line in body if not line.strip().startswith("//")]
    assert code[0] == "if (event.source !== frame.contentWindow) return;"
    # It forwards only the chat fields it knows, never the game's own extras.
    assert re.search(r"const CHAT_FIELDS = \[", source)
    # What it posts to the frame never names the token.
    for call in re.findall(r"post\(\{[^;]*", source):
        assert "token" not in call, call


def test_the_sdk_listens_to_its_parent_only():
    source = (STATIC / "game-sdk.js").read_text()
    assert "if (event.source !== this.target) return;" in source
