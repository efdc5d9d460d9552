from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from games.models import Game
from games.storage import game_dir
from tests.games.conftest import INDEX, make_zip


def upload(files=None):
    data = make_zip(files or {"index.html": INDEX, "game.js": b"1;"}).getvalue()
    return SimpleUploadedFile("game.zip", data, content_type="application/zip")


def form(**extra):
    return {
        "title": "My Game",
        "slug": "my-game",
        "description": "Fun",
        "visibility": "everyone",
        "allowed_models": "",
        "default_model": "",
        "system_prompt": "",
        "package": upload(),
        **extra,
    }


def test_it_requires_login(client):
    assert client.get(reverse("games:publish")).status_code == 302


def test_it_requires_the_publish_permission(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("games:publish")).status_code == 403
    assert client.post(reverse("games:publish"), form()).status_code == 403
    assert not Game.objects.exists()


def test_it_publishes_a_game(client, publisher, friend):
    client.force_login(publisher)
    response = client.post(
        reverse("games:publish"),
        form(visibility="friends", players=[friend.pk], allowed_models="demo-a, demo-b"),
    )
    game = Game.objects.get(slug="my-game")
    assert response.status_code == 302 and response["Location"] == game.get_absolute_url()
    assert game.owner == publisher and game.version == 1
    assert list(game.players.all()) == [friend]
    assert game.allowed_models == ["demo-a", "demo-b"]
    assert (game_dir("my-game") / "index.html").exists()


def test_it_names_the_problem_with_a_bad_zip(client, publisher):
    client.force_login(publisher)
    response = client.post(reverse("games:publish"), form(package=upload({"../x.js": b"1"})))
    assert response.status_code == 200
    assert "../x.js" in response.content.decode()
    assert not Game.objects.exists() and not game_dir("my-game").exists()


def test_it_lets_the_owner_replace_the_files(client, owner, open_game):
    client.force_login(owner)
    response = client.post(
        reverse("games:edit", args=["open-game"]),
        form(slug="ignored", title="Renamed", package=upload({"index.html": INDEX, "v2.js": b"2"})),
    )
    assert response.status_code == 302
    open_game.refresh_from_db()
    assert (open_game.title, open_game.slug, open_game.version) == ("Renamed", "open-game", 2)
    assert (game_dir("open-game") / "v2.js").exists()


def test_it_forbids_others_to_edit(client, friend, open_game):
    client.force_login(friend)
    assert client.get(reverse("games:edit", args=["open-game"])).status_code == 403
