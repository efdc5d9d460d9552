from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import ApiToken, hash_token
from games import services


def test_it_stores_only_a_hash_of_the_game_token(friend, friends_game):
    secret = services.game_session_token_create(user=friend, game=friends_game)
    token = ApiToken.objects.get(owner=friend)
    assert token.token_hash == hash_token(secret) and secret not in token.token_hash
    assert secret.startswith(token.prefix)
    assert token.kind == ApiToken.Kind.GAME_SESSION and token.game == friends_game
    lifetime = token.expires_at - timezone.now()
    assert timedelta(minutes=55) < lifetime <= timedelta(hours=1)


def test_it_prunes_the_users_expired_game_tokens(friend, owner, friends_game):
    services.game_session_token_create(user=friend, game=friends_game)
    services.game_session_token_create(user=owner, game=friends_game)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    services.game_session_token_create(user=friend, game=friends_game)
    assert ApiToken.objects.filter(owner=friend).count() == 1
    assert ApiToken.objects.filter(owner=owner).count() == 1  # another user's are theirs to prune
