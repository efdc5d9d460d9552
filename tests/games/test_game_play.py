from __future__ import annotations

import json

import pytest
from django.urls import reverse

from accounts.models import ApiToken


def test_it_requires_login(client, friends_game):
    assert client.get(reverse("games:play", args=["secret-game"])).status_code == 302


@pytest.mark.parametrize("who,status", [("owner", 200), ("friend", 200), ("outsider", 404)])
def test_it_shows_the_game_only_to_those_who_may_play(client, friends_game, who, status, request):
    client.force_login(request.getfixturevalue(who))
    assert client.get(reverse("games:play", args=["secret-game"])).status_code == status


def test_it_embeds_the_sandboxed_frame_and_a_scoped_token(client, friend, friends_game):
    client.force_login(friend)
    response = client.get(reverse("games:play", args=["secret-game"]))
    html = response.content.decode()
    assert 'sandbox="allow-scripts"' in html
    assert "/games/secret-game/run/" in html and "index.html?v=1" in html
    assert "vgp/host-bridge.js" in html
    script = html.split('id="vgp-bridge-config" type="application/json">')[1]
    config = json.loads(script.split("</script>")[0])
    token = ApiToken.objects.get(owner=friend, kind=ApiToken.Kind.GAME_SESSION)
    assert token.game == friends_game
    assert config["token"].startswith(token.prefix)
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]


def test_it_rejects_post(client, owner, friends_game):
    client.force_login(owner)
    assert client.post(reverse("games:play", args=["secret-game"])).status_code == 405


def test_it_renews_the_token(client, friend, friends_game):
    client.force_login(friend)
    response = client.post(reverse("games:session_token", args=["secret-game"]))
    assert response.status_code == 200
    assert response.json()["token"].startswith("vgp_")


def test_it_renews_no_token_for_an_outsider(client, outsider, friends_game):
    client.force_login(outsider)
    assert client.post(reverse("games:session_token", args=["secret-game"])).status_code == 404
