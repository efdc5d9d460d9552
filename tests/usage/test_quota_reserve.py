from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from inference.errors import QuotaExceeded
from tests.factories import UserFactory
from tests.usage.conftest import NOON, spend
from usage.models import GameQuota, QuotaReservation, UserQuota
from usage.services import quota_release, quota_reserve

pytestmark = pytest.mark.django_db


def test_it_reserves_the_prompt_and_the_completion_budget():
    user = UserFactory(daily_token_limit=10_000, token_limit=100_000)
    reservation = quota_reserve(user=user, prompt_estimate=300, max_tokens=1000, now=NOON)
    assert reservation.max_tokens == 1000
    assert not reservation.lowered
    assert reservation.tokens == 1300
    assert reservation.day == NOON.date()
    row = QuotaReservation.objects.get(pk=reservation.id)
    assert row.tokens == 1300
    assert row.expires_at > NOON


def test_it_lowers_max_tokens_to_what_is_left():
    user = UserFactory(daily_token_limit=1000, token_limit=100_000)
    reservation = quota_reserve(user=user, prompt_estimate=200, max_tokens=4096, now=NOON)
    assert reservation.max_tokens == 800
    assert reservation.requested_max_tokens == 4096
    assert reservation.lowered


def test_it_counts_live_reservations_against_the_limit():
    user = UserFactory(daily_token_limit=1000, token_limit=100_000)
    quota_reserve(user=user, prompt_estimate=100, max_tokens=500, now=NOON)
    second = quota_reserve(user=user, prompt_estimate=100, max_tokens=500, now=NOON)
    assert second.max_tokens == 300


@override_settings(QUOTA_MIN_COMPLETION_TOKENS=16)
def test_it_refuses_below_the_floor_naming_the_daily_limit_and_its_reset():
    user = UserFactory(daily_token_limit=1000, token_limit=100_000)
    spend(user, tokens=990)
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve(user=user, prompt_estimate=0, max_tokens=100, now=NOON)
    error = caught.value
    assert error.code == "QUOTA_EXCEEDED"
    assert error.details == {
        "limit": "daily",
        "limit_tokens": 1000,
        "resets_at": "2026-11-22T00:00:00+00:00",
    }
    assert error.retry_after == 12 * 3600
    assert "daily token limit of 1,000 tokens" in error.message
    assert "2026-11-22T00:00:00+00:00" in error.message
    assert error.headers() == {"Retry-After": str(12 * 3600)}


def test_it_refuses_a_prompt_larger_than_what_is_left():
    user = UserFactory(daily_token_limit=1000, token_limit=100_000)
    with pytest.raises(QuotaExceeded):
        quota_reserve(user=user, prompt_estimate=990, max_tokens=100, now=NOON)
    assert not QuotaReservation.objects.exists()


def test_it_refuses_past_the_total_limit_without_a_reset_time():
    user = UserFactory(daily_token_limit=0, token_limit=2000)  # 0: no daily limit
    spend(user, tokens=1990)
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve(user=user, prompt_estimate=10, max_tokens=100, now=NOON)
    assert caught.value.details == {"limit": "total", "limit_tokens": 2000, "resets_at": None}
    assert caught.value.retry_after is None
    assert "total token limit" in caught.value.message


def test_it_keeps_the_total_limit_across_days():
    user = UserFactory(daily_token_limit=1500, token_limit=2000)
    spend(user, tokens=1400)
    tomorrow = NOON + timedelta(days=1)
    reservation = quota_reserve(user=user, prompt_estimate=100, max_tokens=1000, now=tomorrow)
    assert reservation.max_tokens == 500  # the total's 600 left, not the day's 1500


def test_it_starts_the_daily_count_again_at_the_day_boundary():
    user = UserFactory(daily_token_limit=1000, token_limit=100_000)
    just_before = NOON.replace(hour=23, minute=59, second=59)
    spend(user, tokens=1000, now=just_before)
    with pytest.raises(QuotaExceeded):
        quota_reserve(user=user, prompt_estimate=10, max_tokens=100, now=just_before)

    midnight = just_before + timedelta(seconds=1)
    reservation = quota_reserve(user=user, prompt_estimate=10, max_tokens=100, now=midnight)
    assert reservation.max_tokens == 100
    quota = UserQuota.objects.get(user=user)
    assert (quota.day, quota.day_used, quota.total_used) == (midnight.date(), 0, 1000)


@override_settings(USAGE_TIMEZONE="Europe/Paris")
def test_it_counts_days_in_the_configured_timezone():
    user = UserFactory(daily_token_limit=1000, token_limit=100_000)
    late_utc = NOON.replace(hour=22, minute=30)  # 23:30 in Paris
    spend(user, tokens=1000, now=late_utc)
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve(user=user, prompt_estimate=10, max_tokens=100, now=late_utc)
    assert caught.value.details["resets_at"] == "2026-11-22T00:00:00+01:00"
    next_paris_day = late_utc + timedelta(minutes=31)  # 00:01 in Paris, still the 21st in UTC
    assert quota_reserve(user=user, prompt_estimate=10, max_tokens=100, now=next_paris_day)


def test_it_keeps_the_games_daily_limit_per_player(game, friend):
    game.daily_token_limit_per_player = 500
    game.save()
    user = UserFactory(daily_token_limit=10_000, token_limit=100_000)
    spend(user, tokens=400, game=game)
    reservation = quota_reserve(user=user, game=game, prompt_estimate=50, max_tokens=200, now=NOON)
    assert reservation.max_tokens == 50
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve(user=user, game=game, prompt_estimate=50, max_tokens=200, now=NOON)
    assert caught.value.details["limit"] == "game_daily"
    assert caught.value.details["limit_tokens"] == 500
    assert "This game's daily limit per player" in caught.value.message
    # Outside the game, and for another player, the game's limit does not apply.
    assert quota_reserve(user=user, prompt_estimate=50, max_tokens=200, now=NOON).max_tokens == 200
    other = quota_reserve(user=friend, game=game, prompt_estimate=50, max_tokens=200, now=NOON)
    assert other.max_tokens == 200


def test_it_starts_the_games_count_again_the_next_day(game):
    game.daily_token_limit_per_player = 500
    game.save()
    user = UserFactory(daily_token_limit=10_000, token_limit=100_000)
    spend(user, tokens=500, game=game)
    tomorrow = NOON + timedelta(days=1)
    reservation = quota_reserve(
        user=user, game=game, prompt_estimate=0, max_tokens=500, now=tomorrow
    )
    assert reservation.max_tokens == 500
    assert GameQuota.objects.get(user=user, game=game).day == tomorrow.date()


def test_it_frees_capacity_when_a_reservation_expires():
    user = UserFactory(daily_token_limit=1000, token_limit=100_000)
    quota_reserve(user=user, prompt_estimate=0, max_tokens=1000, now=NOON)
    with pytest.raises(QuotaExceeded):
        quota_reserve(user=user, prompt_estimate=0, max_tokens=100, now=NOON)
    with override_settings(QUOTA_RESERVATION_TTL_S=60):
        later = NOON + timedelta(minutes=30)
        assert quota_reserve(user=user, prompt_estimate=0, max_tokens=100, now=later)
    assert QuotaReservation.objects.count() == 1


def test_it_frees_capacity_on_release():
    user = UserFactory(daily_token_limit=1000, token_limit=100_000)
    reservation = quota_reserve(user=user, prompt_estimate=0, max_tokens=1000, now=NOON)
    quota_release(reservation=reservation)
    assert quota_reserve(user=user, prompt_estimate=0, max_tokens=1000, now=NOON).max_tokens == 1000


def test_it_leaves_unlimited_users_alone():
    user = UserFactory(daily_token_limit=0, token_limit=0)
    reservation = quota_reserve(user=user, prompt_estimate=10**9, max_tokens=10**6, now=NOON)
    assert reservation.max_tokens == 10**6


@override_settings(DEFAULT_DAILY_TOKEN_LIMIT=500, DEFAULT_TOKEN_LIMIT=10_000)
def test_it_applies_the_configured_defaults():
    user = UserFactory()
    assert (
        quota_reserve(user=user, prompt_estimate=100, max_tokens=1000, now=NOON).max_tokens == 400
    )


def test_it_counts_on_the_later_day_when_clocks_disagree_at_midnight():
    user = UserFactory(daily_token_limit=1000, token_limit=100_000)
    after_midnight = NOON.replace(hour=0, minute=0, second=1) + timedelta(days=1)
    spend(user, tokens=900, now=after_midnight)
    # A worker whose clock is two seconds behind still sees the new day's usage.
    behind = after_midnight - timedelta(seconds=2)
    reservation = quota_reserve(user=user, prompt_estimate=0, max_tokens=500, now=behind)
    assert (reservation.day, reservation.max_tokens) == (after_midnight.date(), 100)
