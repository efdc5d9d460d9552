from django.urls import reverse

from accounts.models import ApiToken, hash_token
from games.models import Game
from tests.factories import ApiTokenFactory

URL = "/tokens/"


def _secret_from(response) -> str:
    marker = b'aria-label="New token" data-copy-source'
    page = response.content.decode()
    assert marker.decode() in page
    start = page.index('value="vgp_') + len('value="')
    return page[start : page.index('"', start)]


def test_it_is_served_at_the_tokens_path():
    assert reverse("accounts:tokens") == URL


def test_it_requires_login(client, db):
    response = client.get(URL)

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_it_creates_a_token_and_shows_the_secret_once(owner_client, owner):
    response = owner_client.post(URL, {"name": "laptop"})

    assert response.status_code == 200
    secret = _secret_from(response)
    token = ApiToken.objects.get(owner=owner)
    assert token.name == "laptop"
    assert token.token_hash == hash_token(secret)
    assert "no-store" in response["Cache-Control"]

    again = owner_client.get(URL)
    assert secret.encode() not in again.content
    assert token.prefix.encode() in again.content


def test_it_scopes_a_token_to_a_game_with_an_expiry(owner_client, owner):
    game = Game.objects.create(slug="space-quiz", title="Space Quiz")

    owner_client.post(URL, {"name": "quiz bot", "game": game.pk, "expires_days": "10"})

    token = ApiToken.objects.get(owner=owner)
    assert token.game == game
    assert token.expires_at is not None


def test_it_offers_only_games_the_user_can_see(owner_client, friend):
    Game.objects.create(slug="open-game", title="Open Game")
    hidden = Game.objects.create(
        slug="private-game", title="Private Game", visibility=Game.Visibility.FRIENDS
    )
    hidden.players.add(friend)

    response = owner_client.get(URL)

    assert b"Open Game" in response.content
    assert b"Private Game" not in response.content
    refused = owner_client.post(URL, {"name": "sneaky", "game": hidden.pk})
    assert refused.status_code == 200
    assert not ApiToken.objects.filter(name="sneaky").exists()


def test_it_rejects_a_missing_name(owner_client, owner):
    response = owner_client.post(URL, {"name": ""})

    assert response.status_code == 200
    assert not ApiToken.objects.filter(owner=owner).exists()
    assert b"new-token" not in response.content


def test_it_lists_name_prefix_game_and_status(owner_client, owner):
    game = Game.objects.create(slug="space-quiz", title="Space Quiz")
    ApiTokenFactory(owner=owner, name="quiz token", game=game)
    revoked = ApiTokenFactory(owner=owner, name="old token")
    revoked.revoked_at = revoked.created_at
    revoked.save()

    response = owner_client.get(URL)

    assert b"quiz token" in response.content
    assert b"Space Quiz" in response.content
    assert b"active" in response.content
    assert b"revoked" in response.content
    assert revoked.prefix.encode() in response.content


def test_it_never_shows_a_listed_tokens_secret_or_hash(owner_client, owner_token):
    response = owner_client.get(URL)

    assert owner_token.secret.encode() not in response.content
    assert owner_token.token_hash.encode() not in response.content


def test_it_does_not_list_other_users_tokens(owner_client, friend):
    ApiTokenFactory(owner=friend, name="friend's secret project")

    response = owner_client.get(URL)

    assert b"secret project" not in response.content
