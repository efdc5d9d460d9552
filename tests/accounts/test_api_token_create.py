from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import TOKEN_PREFIX, ApiToken, hash_token
from accounts.services import api_token_create
from games.models import Game


def test_it_returns_the_secret_and_stores_only_its_hash(owner):
    token, secret = api_token_create(owner=owner, name="laptop")

    assert secret.startswith(TOKEN_PREFIX)
    assert token.token_hash == hash_token(secret)
    assert secret.startswith(token.prefix)
    stored = ApiToken.objects.get(pk=token.pk)
    assert secret not in {getattr(stored, f.attname) for f in ApiToken._meta.concrete_fields}


def test_it_creates_a_distinct_secret_each_time(owner):
    _, first = api_token_create(owner=owner, name="a")
    _, second = api_token_create(owner=owner, name="b")

    assert first != second


def test_it_does_not_expire_by_default(owner, settings):
    settings.API_TOKEN_LIFETIME_DAYS = 0

    token, _ = api_token_create(owner=owner, name="laptop")

    assert token.expires_at is None
    assert token.kind == ApiToken.Kind.PERSONAL


def test_it_applies_the_configured_lifetime(owner, settings):
    settings.API_TOKEN_LIFETIME_DAYS = 30

    token, _ = api_token_create(owner=owner, name="laptop")

    expected = timezone.now() + timedelta(days=30)
    assert abs(token.expires_at - expected) < timedelta(seconds=5)


def test_it_sets_expiry_days(owner):
    token, _ = api_token_create(owner=owner, name="laptop", expires_days=7)

    expected = timezone.now() + timedelta(days=7)
    assert abs(token.expires_at - expected) < timedelta(seconds=5)


def test_it_makes_short_lived_game_session_tokens(owner):
    game = Game.objects.create(slug="space-quiz", title="Space Quiz")

    token, _ = api_token_create(
        owner=owner,
        name="play",
        game=game,
        kind=ApiToken.Kind.GAME_SESSION,
        lifetime=timedelta(hours=1),
    )

    assert token.game == game
    assert token.kind == ApiToken.Kind.GAME_SESSION
    expected = timezone.now() + timedelta(hours=1)
    assert abs(token.expires_at - expected) < timedelta(seconds=5)


def test_it_rejects_zero_expiry_days(owner):
    with pytest.raises(ValidationError):
        api_token_create(owner=owner, name="laptop", expires_days=0)
