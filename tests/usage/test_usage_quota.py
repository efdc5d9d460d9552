"""usage_quota: the quota figures alone, as the WebSocket's `token_usage` and the
settlement's `quota_after` carry them."""

from __future__ import annotations

import pytest

from inference.backends.base import Usage
from tests.factories import UserFactory
from tests.usage.conftest import NOON, spend
from usage.selectors import usage_quota, usage_summary
from usage.services import quota_reserve, quota_settle

pytestmark = pytest.mark.django_db


def test_it_is_the_summary_without_cost_and_models():
    user = UserFactory(daily_token_limit=10_000, token_limit=50_000)
    spend(user, tokens=2000)
    quota_reserve(user=user, prompt_estimate=100, max_tokens=200, now=NOON)
    summary = usage_summary(user=user, now=NOON)
    assert usage_quota(user=user, now=NOON) == {
        key: summary[key] for key in ("limits", "used", "reserved", "remaining", "resets_at")
    }


def test_it_equals_what_the_settlement_reports():
    user = UserFactory(daily_token_limit=10_000, token_limit=50_000)
    reservation = quota_reserve(user=user, prompt_estimate=100, max_tokens=200)
    record = quota_settle(
        reservation=reservation,
        usage=Usage(prompt_tokens=50, completion_tokens=20),
        backend="demo",
        model="demo",
        outcome="ok",
        latency_ms=5,
    )
    assert record.quota_after == usage_quota(user=user)
    assert record.quota_after["used"]["today"] == 70
