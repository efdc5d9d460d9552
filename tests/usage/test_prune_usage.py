from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.usage.conftest import spend
from usage.models import UsageRecord, UserQuota

pytestmark = pytest.mark.django_db


def test_it_deletes_records_before_the_day_and_keeps_the_counters(owner):
    now = timezone.now()
    spend(owner, tokens=100, now=now - timedelta(days=40))
    spend(owner, tokens=100, now=now - timedelta(days=35))
    spend(owner, tokens=100, now=now)
    out = StringIO()
    before = (now - timedelta(days=30)).date()
    call_command("prune_usage", "--before", before.isoformat(), stdout=out)
    assert out.getvalue().strip() == (
        f"Deleted 2 usage records from before {before}. Counters are unchanged."
    )
    assert UsageRecord.objects.count() == 1
    assert UserQuota.objects.get(user=owner).total_used == 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--before"),
        (["--before", "soon"], "--before: expected a date as YYYY-MM-DD"),
        (["--before", "2999-01-01"], "is in the future"),
    ],
)
def test_it_rejects_bad_arguments(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("prune_usage", *args)
