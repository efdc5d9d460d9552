from __future__ import annotations

import pytest
from django.test import override_settings

from inference.errors import RateLimitExceeded
from tests.factories import UserFactory
from usage.services import arate_limit_hit, rate_limit_hit

pytestmark = pytest.mark.django_db


def test_it_allows_up_to_the_users_rate():
    user = UserFactory(rate_limit_per_minute=3)
    for _ in range(3):
        rate_limit_hit(user=user)


def test_it_refuses_past_the_rate_with_retry_after():
    user = UserFactory(rate_limit_per_minute=2)
    rate_limit_hit(user=user)
    rate_limit_hit(user=user)
    with pytest.raises(RateLimitExceeded) as caught:
        rate_limit_hit(user=user)
    error = caught.value
    assert error.code == "RATE_LIMIT_EXCEEDED"
    assert 1 <= error.retry_after <= 60
    assert error.details == {"limit_per_minute": 2}
    assert "Retry-After" in error.headers()


def test_it_counts_each_user_apart(friend, outsider):
    friend.rate_limit_per_minute = 1
    friend.save()
    rate_limit_hit(user=friend)
    with pytest.raises(RateLimitExceeded):
        rate_limit_hit(user=friend)
    outsider.rate_limit_per_minute = 1
    outsider.save()
    rate_limit_hit(user=outsider)


@override_settings(RATE_LIMIT_PER_MINUTE=0)
def test_it_never_limits_an_unlimited_user():
    user = UserFactory()
    for _ in range(200):
        rate_limit_hit(user=user)


@override_settings(RATE_LIMIT_PER_MINUTE=1)
def test_it_applies_the_configured_default():
    user = UserFactory()
    rate_limit_hit(user=user)
    with pytest.raises(RateLimitExceeded):
        rate_limit_hit(user=user)


@pytest.mark.django_db(transaction=True)
async def test_it_works_from_async_code():
    user = await UserFactory._meta.model.objects.acreate(username="fast", rate_limit_per_minute=1)
    await arate_limit_hit(user=user)
    with pytest.raises(RateLimitExceeded):
        await arate_limit_hit(user=user)
