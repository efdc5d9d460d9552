from __future__ import annotations

from datetime import UTC, datetime

import pytest

from games.models import Game
from inference.backends.base import Usage
from usage.selectors import price_cache_clear
from usage.services import quota_reserve, quota_settle

# A fixed instant: tests pass `now` to the services instead of mocking time.
NOON = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Argon2 takes a good part of a second per user; these tests never log in
    # with a password.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_price_cache():
    # Rolled-back or flushed rows fire no signal, so a cached table could outlive them.
    price_cache_clear()
    yield
    price_cache_clear()


@pytest.fixture
def game(db):
    return Game.objects.create(slug="riddles", title="Riddles")


def spend(user, *, tokens, now=NOON, game=None, model="test-model", outcome="ok"):
    """Reserve and settle a request that used `tokens` (prompt and completion split)."""
    prompt = tokens // 2
    reservation = quota_reserve(
        user=user, game=game, prompt_estimate=prompt, max_tokens=tokens - prompt, now=now
    )
    return quota_settle(
        reservation=reservation,
        usage=Usage(prompt_tokens=prompt, completion_tokens=tokens - prompt),
        outcome=outcome,
        backend="demo",
        model=model,
        latency_ms=120,
        ttft_ms=30,
    )
