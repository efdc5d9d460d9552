from __future__ import annotations

import pytest
from django.urls import reverse

from tests.usage.conftest import spend
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db

URL = "/usage/"


def test_it_requires_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_it_rejects_post(owner_client):
    assert owner_client.post(URL).status_code == 405


def test_it_reads_well_without_usage(owner_client):
    response = owner_client.get(URL)
    assert response.status_code == 200
    assert reverse("usage:dashboard") == URL
    page = response.content.decode()
    assert "Your usage" in page
    assert "No requests in the last 30 days" in page
    assert "No requests yet." in page
    assert "<svg" not in page
    assert "django_htmx/htmx-2.min.js" in page  # served from the package, no CDN
    assert 'hx-trigger="every 10s"' in page


def test_it_shows_bars_chart_breakdowns_and_requests(owner_client, owner, game):
    owner.daily_token_limit = 10_000
    owner.save()
    spend(owner, tokens=2500, now=None, game=game, model="claude-test")
    spend(owner, tokens=500, now=None, model="llama-test", outcome="cancelled")
    response = owner_client.get(URL)
    page = response.content.decode()
    assert "2,500" in page or "3,000" in page
    assert "of 10,000 tokens" in page
    assert 'aria-valuenow="30"' in page  # 3,000 of 10,000 today
    assert "<svg" in page and "<rect" in page and "<polyline" in page
    assert "claude-test" in page and "llama-test" in page
    assert "Riddles" in page
    assert "Cancelled" in page
    assert "Resets in" in page


def test_it_never_shows_another_users_usage(client, owner, friend, outsider):
    spend(owner, tokens=1234, now=None, model="owners-secret-model")
    for user in (friend, outsider):
        client.force_login(user)
        page = client.get(URL).content.decode()
        assert "owners-secret-model" not in page
        assert "1,234" not in page


def test_it_returns_only_the_figures_to_htmx(owner_client, owner):
    spend(owner, tokens=100, now=None, model="polled-model")
    response = owner_client.get(URL, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200
    assert "polled-model" in page
    assert "<html" not in page
    assert 'id="usage-figures"' not in page


def test_it_marks_estimated_counts_and_errors(owner_client, owner):
    record = spend(owner, tokens=10, now=None, outcome="error")
    UsageRecord.objects.filter(pk=record.pk).update(estimated=True, error_code="INFERENCE_TIMEOUT")
    page = owner_client.get(URL).content.decode()
    assert "Error: INFERENCE_TIMEOUT" in page
    assert "≈" in page
