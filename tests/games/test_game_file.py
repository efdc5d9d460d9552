from __future__ import annotations

import pytest
from django.urls import reverse

from games.views import _run_key


def url(slug="secret-game", path="index.html"):
    return reverse("games:file", kwargs={"slug": slug, "path": path})


def test_it_requires_login(client, friends_game):
    response = client.get(url())
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("who,status", [("owner", 200), ("friend", 200), ("outsider", 404)])
def test_it_serves_only_to_those_who_may_play(client, friends_game, who, status, request):
    client.force_login(request.getfixturevalue(who))
    assert client.get(url()).status_code == status


def test_it_sends_sandbox_headers(client, owner, friends_game):
    client.force_login(owner)
    response = client.get(url())
    csp = response["Content-Security-Policy"]
    assert csp.startswith("sandbox allow-scripts;")
    assert "connect-src 'none'" in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Cache-Control"].startswith("private, max-age=")
    assert response["Last-Modified"]


def test_it_sends_the_right_content_type(client, owner, friends_game):
    client.force_login(owner)
    assert client.get(url(path="game.js"))["Content-Type"] == "text/javascript; charset=utf-8"


def test_it_answers_304_to_a_matching_etag(client, owner, friends_game):
    client.force_login(owner)
    etag = client.get(url())["ETag"]
    response = client.get(url(), headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response["ETag"] == etag
    assert client.get(url(), headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize(
    "path", ["../secret-game/index.html", "..%2Findex.html", "a/../../x", "missing.js", "%00"]
)
def test_it_refuses_path_traversal(client, owner, friends_game, path):
    client.force_login(owner)
    assert client.get(f"/games/secret-game/files/{path}").status_code == 404


def test_it_serves_the_frame_by_run_key_without_a_session(client, friend, friends_game):
    # Requests from the sandboxed frame carry no cookies: the key stands in.
    path = reverse(
        "games:run_file",
        kwargs={
            "slug": "secret-game",
            "key": _run_key(user=friend, game=friends_game),
            "path": "game.js",
        },
    )
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Security-Policy"].startswith("sandbox allow-scripts;")


def test_it_refuses_a_forged_or_foreign_run_key(client, friend, outsider, friends_game):
    forged = reverse(
        "games:run_file", kwargs={"slug": "secret-game", "key": "1-1-1-1:bad", "path": "index.html"}
    )
    assert client.get(forged).status_code == 404
    outsiders = reverse(
        "games:run_file",
        kwargs={
            "slug": "secret-game",
            "key": _run_key(user=outsider, game=friends_game),
            "path": "index.html",
        },
    )
    assert client.get(outsiders).status_code == 404
