from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiToken, hash_token
from games.models import Game


def _run(*args) -> str:
    out = StringIO()
    call_command("create_api_token", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_secret_as_the_last_line(owner):
    output = _run("owner", "--name", "ci")

    secret = output.strip().splitlines()[-1]
    token = ApiToken.objects.get(owner=owner)
    assert token.name == "ci"
    assert token.token_hash == hash_token(secret)


def test_it_scopes_to_a_game_and_sets_expiry(owner):
    game = Game.objects.create(slug="space-quiz", title="Space Quiz")

    _run("owner", "--game", "space-quiz", "--expires-days", "3")

    token = ApiToken.objects.get(owner=owner)
    assert token.game == game
    assert token.expires_at is not None


def test_it_rejects_an_unknown_user(db):
    with pytest.raises(CommandError, match="No user named"):
        _run("nobody")


def test_it_rejects_an_unknown_game(owner):
    with pytest.raises(CommandError, match="No game"):
        _run("owner", "--game", "nope")
    assert not ApiToken.objects.exists()
