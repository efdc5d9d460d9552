from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.factories import UserFactory
from tests.usage.conftest import NOON, spend
from usage.models import ModelPrice
from usage.selectors import (
    ausage_summary,
    usage_all_users,
    usage_by_game,
    usage_daily_series,
    usage_summary,
)
from usage.services import quota_reserve

pytestmark = pytest.mark.django_db


def test_it_has_the_shape_of_the_api_for_a_new_user():
    user = UserFactory(daily_token_limit=1000, token_limit=5000)
    assert usage_summary(user=user, now=NOON) == {
        "limits": {"total": 5000, "daily": 1000},
        "used": {"total": 0, "today": 0},
        "reserved": {"total": 0, "today": 0},
        "remaining": {"total": 5000, "today": 1000},
        "cost_usd": {"total": 0.0, "today": 0.0},
        "resets_at": "2026-11-22T00:00:00+00:00",
        "by_model": [],
    }


def test_it_counts_usage_reservations_and_cost():
    ModelPrice.objects.create(
        pattern="priced", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("1")
    )
    user = UserFactory(daily_token_limit=10_000, token_limit=50_000)
    spend(user, tokens=1000, now=NOON - timedelta(days=1), model="priced")
    spend(user, tokens=2000, model="priced")
    spend(user, tokens=500, model="free")
    quota_reserve(user=user, prompt_estimate=100, max_tokens=200, now=NOON)

    summary = usage_summary(user=user, now=NOON)
    assert summary["used"] == {"total": 3500, "today": 2500}
    assert summary["reserved"] == {"total": 300, "today": 300}
    assert summary["remaining"] == {"total": 50_000 - 3800, "today": 10_000 - 2800}
    assert summary["cost_usd"] == {"total": 0.003, "today": 0.002}
    assert summary["by_model"] == [
        {"model": "priced", "tokens": 3000, "cost_usd": 0.003},
        {"model": "free", "tokens": 500, "cost_usd": 0.0},
    ]


def test_it_reports_null_remaining_for_unlimited_users():
    user = UserFactory(daily_token_limit=0, token_limit=0)
    spend(user, tokens=100)
    summary = usage_summary(user=user, now=NOON)
    assert summary["limits"] == {"total": None, "daily": None}
    assert summary["remaining"] == {"total": None, "today": None}


def test_it_shows_yesterdays_count_as_nothing_today():
    user = UserFactory(daily_token_limit=1000)
    spend(user, tokens=700)
    summary = usage_summary(user=user, now=NOON + timedelta(days=1))
    assert summary["used"] == {"total": 700, "today": 0}


def test_it_shows_only_the_users_own_usage(owner, friend, outsider):
    spend(friend, tokens=900)
    spend(outsider, tokens=100)
    assert usage_summary(user=owner, now=NOON)["used"]["total"] == 0
    assert usage_summary(user=friend, now=NOON)["used"]["total"] == 900


def test_it_gives_every_one_of_the_last_30_days(game):
    user = UserFactory()
    spend(user, tokens=999, now=NOON - timedelta(days=40))
    spend(user, tokens=100, now=NOON - timedelta(days=3))
    spend(user, tokens=50, now=NOON, game=game)
    series = usage_daily_series(user=user, days=30, now=NOON)
    assert len(series) == 30
    assert series[-1]["day"] == NOON.date()
    assert series[-1]["tokens"] == 50
    assert series[-4]["tokens"] == 100
    assert sum(day["tokens"] for day in series) == 150
    games = {row["game__title"]: row["tokens"] for row in usage_by_game(user=user)}
    assert games == {"Riddles": 50, None: 1099}


def test_it_lists_every_user_for_staff(owner, friend):
    spend(friend, tokens=400)
    rows = {row["username"]: row for row in usage_all_users(now=NOON)}
    assert rows["friend"]["used_today"] == 400
    assert rows["friend"]["requests"] == 1
    assert rows["owner"]["used_total"] == 0


@pytest.mark.django_db(transaction=True)
async def test_it_answers_from_async_code():
    user = await UserFactory._meta.model.objects.acreate(
        username="async-reader", daily_token_limit=10
    )
    summary = await ausage_summary(user=user)
    assert summary["limits"]["daily"] == 10
