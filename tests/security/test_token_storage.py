"""API tokens are stored hashed: the row keeps a SHA-256 hash and a short prefix,
nothing the secret can be recovered from; revoked and expired tokens fail; a
token is found by its hash, so the stored hash is not itself a credential."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import api_token_create
from games import services as game_services

pytestmark = pytest.mark.django_db(transaction=True)

USAGE = "/api/inference/usage"


def _status(secret: str) -> int:
    return Client().get(USAGE, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code


def _raw_row(token: ApiToken) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apitoken WHERE id = %s", [token.pk])
        return [str(value) for value in cursor.fetchone()]


def test_it_stores_only_a_hash_and_a_prefix(owner):
    token, secret = api_token_create(owner=owner, name="laptop")
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(token.prefix) and len(token.prefix) == 10
    hidden = secret[len(token.prefix) :]
    assert len(hidden) >= 37  # 222 random bits (6 a character) stored nowhere
    for value in _raw_row(token):
        # No column holds the secret, or any 8 characters of its hidden part.
        assert secret not in value
        assert not any(hidden[i : i + 8] in value for i in range(len(hidden) - 7)), value


def test_it_stores_the_game_session_token_hashed_too(owner, world):
    secret = game_services.game_session_token_create(user=owner, game=world.open_game)
    token = ApiToken.objects.get(token_hash=hashlib.sha256(secret.encode()).hexdigest())
    assert all(secret not in value for value in _raw_row(token))
    assert token.game == world.open_game and token.expires_at is not None


def test_it_accepts_the_secret_and_not_what_is_stored(owner):
    token, secret = api_token_create(owner=owner, name="laptop")
    assert _status(secret) == 200
    # Someone who reads the table (a backup, the admin) holds no credential.
    assert _status(token.token_hash) == 401
    assert _status(token.prefix) == 401
    assert _status(secret[:-1]) == 401
    assert _status(secret + "x") == 401


def test_it_finds_a_token_by_the_hash_of_the_secret(owner):
    token, secret = api_token_create(owner=owner, name="laptop")
    ApiToken.objects.filter(pk=token.pk).update(token_hash="0" * 64)
    assert _status(secret) == 401


def test_it_refuses_a_revoked_token(owner, friend, outsider):
    token, secret = api_token_create(owner=owner, name="laptop")
    client = Client()
    client.force_login(owner)
    client.post(f"/tokens/{token.pk}/revoke/")
    assert _status(secret) == 401
    # Nobody else's token is touched.
    for user in (friend, outsider):
        _, other = api_token_create(owner=user, name="theirs")
        assert _status(other) == 200


def test_it_refuses_an_expired_token(owner):
    token, secret = api_token_create(owner=owner, name="laptop", expires_days=1)
    assert _status(secret) == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _status(secret) == 401


def test_it_refuses_an_expired_game_session_token(owner, world):
    secret = game_services.game_session_token_create(user=owner, game=world.open_game)
    assert _status(secret) == 200
    ApiToken.objects.filter(kind=ApiToken.Kind.GAME_SESSION).update(expires_at=timezone.now())
    assert _status(secret) == 401
