from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = StringIO()
    call_command("set_limits", *args, stdout=out)
    return out.getvalue().strip()


@override_settings(RATE_LIMIT_PER_MINUTE=60, DEFAULT_TOKEN_LIMIT=1_000_000)
def test_it_sets_the_daily_and_total_limits(owner):
    output = _run("owner", "--daily", "50000", "--total", "2_000_000")
    owner.refresh_from_db()
    assert (owner.daily_token_limit, owner.token_limit) == (50_000, 2_000_000)
    assert output == (
        "Limits of owner: daily 50,000 tokens, total 2,000,000 tokens, "
        "rate 60 requests (the default) a minute."
    )


@override_settings(DEFAULT_DAILY_TOKEN_LIMIT=100_000)
def test_it_returns_to_the_default(owner):
    owner.daily_token_limit = 5
    owner.save()
    output = _run("owner", "--daily", "default")
    owner.refresh_from_db()
    assert owner.daily_token_limit is None
    assert "daily 100,000 tokens (the default)" in output


def test_it_lifts_a_limit(owner):
    _run("owner", "--total", "unlimited", "--rate", "0")
    owner.refresh_from_db()
    assert owner.token_limit == 0
    assert owner.effective_token_limit is None
    assert owner.effective_rate_limit_per_minute is None


def test_it_leaves_limits_not_given_alone(owner):
    owner.token_limit = 777
    owner.save()
    _run("owner", "--daily", "10")
    owner.refresh_from_db()
    assert owner.token_limit == 777


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["owner"], "Nothing to set"),
        (["owner", "--daily", "lots"], "--daily: expected a number of tokens"),
        (["owner", "--total", "-5"], "--total: a limit cannot be negative"),
        (["nobody", "--daily", "5"], "No user named 'nobody'"),
    ],
)
def test_it_rejects_bad_arguments(owner, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("set_limits", *args)
