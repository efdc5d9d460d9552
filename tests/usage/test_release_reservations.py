from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from usage.models import QuotaReservation
from usage.services import quota_reserve, release_expired_reservations

pytestmark = pytest.mark.django_db


def test_it_releases_only_expired_reservations(owner, friend, outsider):
    long_ago = timezone.now() - timedelta(days=1)
    quota_reserve(user=owner, prompt_estimate=10, max_tokens=100, now=long_ago)
    quota_reserve(user=friend, prompt_estimate=10, max_tokens=100, now=long_ago)
    live = quota_reserve(user=outsider, prompt_estimate=10, max_tokens=100)
    out = StringIO()
    call_command("release_reservations", stdout=out)
    assert out.getvalue().strip() == "Released 2 expired reservations."
    assert list(QuotaReservation.objects.values_list("id", flat=True)) == [live.id]
    assert release_expired_reservations() == 0
