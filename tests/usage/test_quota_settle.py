from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from inference.backends.base import Usage
from inference.services import run_db
from tests.factories import ApiTokenFactory, UserFactory
from tests.usage.conftest import NOON
from usage.clock import day_resets_at, usage_day
from usage.models import GameQuota, ModelPrice, QuotaReservation, UsageRecord, UserQuota
from usage.services import (
    quota_release,
    quota_reserve,
    quota_settle,
)

pytestmark = pytest.mark.django_db


def _settle(reservation, usage, **kwargs):
    options = {"outcome": "ok", "backend": "demo", "model": "test-model", "latency_ms": 900}
    options.update(kwargs)
    return quota_settle(reservation=reservation, usage=usage, **options)


def test_it_counts_the_true_usage_and_frees_the_rest():
    user = UserFactory(daily_token_limit=10_000, token_limit=100_000)
    reservation = quota_reserve(user=user, prompt_estimate=500, max_tokens=1000, now=NOON)
    record = _settle(reservation, Usage(prompt_tokens=120, completion_tokens=80), ttft_ms=40)
    quota = UserQuota.objects.get(user=user)
    assert (quota.total_used, quota.day_used) == (200, 200)
    assert not QuotaReservation.objects.exists()
    assert record.total_tokens == 200
    assert (record.prompt_tokens, record.completion_tokens) == (120, 80)
    assert (record.day, record.latency_ms, record.ttft_ms) == (NOON.date(), 900, 40)
    assert record.outcome == "ok"
    assert not record.estimated


def test_it_records_a_cancelled_stream_with_its_partial_usage(game):
    user = UserFactory(daily_token_limit=10_000, token_limit=100_000)
    token = ApiTokenFactory(owner=user)
    reservation = quota_reserve(
        user=user, game=game, prompt_estimate=500, max_tokens=1000, now=NOON
    )
    record = _settle(
        reservation,
        Usage(prompt_tokens=100, completion_tokens=17, estimated=True),
        outcome="cancelled",
        error_code="CLIENT_CLOSED",
        token=token,
        backend="ollama",
        model="llama3.2",
        ttft_ms=None,
    )
    assert record.outcome == "cancelled"
    assert record.estimated
    assert (record.token, record.game, record.backend) == (token, game, "ollama")
    assert record.error_code == "CLIENT_CLOSED"
    assert UserQuota.objects.get(user=user).day_used == 117
    assert GameQuota.objects.get(user=user, game=game).day_used == 117


def test_it_records_a_failed_request_that_used_nothing():
    user = UserFactory()
    reservation = quota_reserve(user=user, prompt_estimate=50, max_tokens=100, now=NOON)
    record = _settle(reservation, Usage(), outcome="error", error_code="UPSTREAM_ERROR")
    assert (record.total_tokens, record.outcome) == (0, "error")
    assert UserQuota.objects.get(user=user).total_used == 0
    assert not QuotaReservation.objects.exists()


def test_it_counts_cache_tokens_and_prices_the_record():
    ModelPrice.objects.create(
        pattern="test-priced",
        input_per_mtok=Decimal("3"),
        output_per_mtok=Decimal("15"),
        cache_write_per_mtok=Decimal("3.75"),
        cache_read_per_mtok=Decimal("0.30"),
    )
    user = UserFactory()
    reservation = quota_reserve(user=user, prompt_estimate=5000, max_tokens=1000, now=NOON)
    usage = Usage(
        prompt_tokens=1000, completion_tokens=500, cache_write_tokens=2000, cache_read_tokens=1000
    )
    record = _settle(reservation, usage, model="test-priced")
    assert record.total_tokens == 4500
    assert record.cost_usd == Decimal("0.01830000")  # 0.003 + 0.0075 + 0.0075 + 0.0003
    assert UserQuota.objects.get(user=user).total_used == 4500


def test_it_counts_a_request_that_crossed_midnight_in_the_total_only():
    user = UserFactory(daily_token_limit=1000, token_limit=100_000)
    late = NOON.replace(hour=23, minute=59)
    reservation = quota_reserve(user=user, prompt_estimate=100, max_tokens=500, now=late)
    quota_reserve(user=user, prompt_estimate=0, max_tokens=100, now=late + timedelta(minutes=2))
    record = quota_settle(
        reservation=reservation,
        usage=Usage(prompt_tokens=100, completion_tokens=300),
        outcome="ok",
        backend="demo",
        model="test-model",
        latency_ms=1,
    )
    quota = UserQuota.objects.get(user=user)
    assert quota.total_used == 400
    assert quota.day_used == 0  # the new day's counter; the old day kept it reserved
    assert record.day == late.date()


def test_it_keeps_the_counters_equal_to_the_records(game):
    user = UserFactory(daily_token_limit=100_000, token_limit=1_000_000)
    for tokens, used_game in [(100, None), (250, game), (75, game)]:
        reservation = quota_reserve(
            user=user, game=used_game, prompt_estimate=tokens, max_tokens=100, now=NOON
        )
        _settle(reservation, Usage(prompt_tokens=tokens, completion_tokens=0))
    quota = UserQuota.objects.get(user=user)
    assert (
        quota.total_used == quota.day_used == sum(r.total_tokens for r in UsageRecord.objects.all())
    )
    assert GameQuota.objects.get(user=user, game=game).day_used == 325


@pytest.mark.django_db(transaction=True)
async def test_it_reserves_settles_and_releases_from_async_code_through_run_db():
    user = await UserFactory._meta.model.objects.acreate(
        username="async-player", daily_token_limit=1000
    )
    reservation = await run_db(quota_reserve, user=user, prompt_estimate=100, max_tokens=2000)
    assert reservation.max_tokens == 900
    record = await run_db(
        quota_settle,
        reservation=reservation,
        usage=Usage(prompt_tokens=40, completion_tokens=60),
        outcome="ok",
        backend="demo",
        model="demo",
        latency_ms=5,
        ttft_ms=1,
    )
    assert record.total_tokens == 100
    second = await run_db(quota_reserve, user=user, prompt_estimate=100, max_tokens=2000)
    await run_db(quota_release, reservation=second)
    assert await QuotaReservation.objects.acount() == 0
    assert (await UserQuota.objects.aget(user=user)).total_used == 100


def test_it_reports_the_figures_after_the_request():
    user = UserFactory(daily_token_limit=1000, token_limit=0)  # 0: no total limit
    quota_reserve(user=user, prompt_estimate=50, max_tokens=50)  # still in flight
    reservation = quota_reserve(user=user, prompt_estimate=100, max_tokens=500)
    record = _settle(reservation, Usage(prompt_tokens=80, completion_tokens=120))
    assert record.quota_after == {
        "limits": {"total": None, "daily": 1000},
        "used": {"total": 200, "today": 200},
        "reserved": {"total": 100, "today": 100},
        "remaining": {"total": None, "today": 700},
        "resets_at": day_resets_at(usage_day()).isoformat(),
    }
