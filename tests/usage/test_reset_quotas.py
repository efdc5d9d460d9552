from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.usage.conftest import spend
from usage.models import GameQuota, UsageRecord, UserQuota

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = StringIO()
    call_command("reset_quotas", *args, stdout=out)
    return out.getvalue().strip()


def _counters(user):
    quota = UserQuota.objects.get(user=user)
    return quota.day_used, quota.total_used


def test_it_resets_the_daily_usage_of_everyone(owner, friend, outsider, game):
    for user in (owner, friend, outsider):
        spend(user, tokens=100, now=None, game=game)
    assert _run("--daily") == "Reset daily usage of 3 users."
    assert _counters(owner) == (0, 100)
    assert set(GameQuota.objects.values_list("day_used", flat=True)) == {0}
    assert UsageRecord.objects.count() == 3  # history stays


def test_it_resets_one_users_total(owner, friend):
    spend(owner, tokens=100, now=None)
    spend(friend, tokens=100, now=None)
    assert _run("--total", "--user", "owner") == "Reset total usage of user owner."
    assert _counters(owner) == (100, 0)
    assert _counters(friend) == (100, 100)


def test_it_resets_both_windows(owner):
    spend(owner, tokens=100, now=None)
    assert _run("--all") == "Reset daily and total usage of 1 user."
    assert _counters(owner) == (0, 0)


def test_it_says_when_there_is_nothing_to_reset(owner):
    assert _run("--all", "--user", "owner") == "User owner has no usage to reset."


def test_it_requires_a_window(owner):
    with pytest.raises(CommandError, match="one of the arguments --daily --total --all"):
        call_command("reset_quotas")


def test_it_rejects_an_unknown_user(db):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("reset_quotas", "--daily", "--user", "nobody")
