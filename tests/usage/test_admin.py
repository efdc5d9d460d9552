from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Permission
from django.test import RequestFactory
from django.utils import timezone

from accounts.models import User
from tests.factories import UserFactory
from tests.usage.conftest import spend
from usage.admin import UserUsageAdminMixin
from usage.models import QuotaReservation
from usage.services import quota_reserve

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "/admin/usage/usagerecord/",
        "/admin/usage/modelprice/",
        "/admin/usage/quotareservation/",
        "/admin/usage/userquota/",
        "/admin/usage/gamequota/",
    ],
)
def test_it_lists_usage_tables_to_staff(client, staff, owner, game, url):
    spend(owner, tokens=10, now=None, game=game)
    client.force_login(staff)
    assert client.get(url).status_code == 200


def test_it_keeps_usage_records_read_only(client, staff, owner):
    record = spend(owner, tokens=10, now=None)
    client.force_login(staff)
    assert client.get("/admin/usage/usagerecord/add/").status_code == 403
    response = client.post(f"/admin/usage/usagerecord/{record.pk}/change/", {"total_tokens": 0})
    assert response.status_code == 403
    record.refresh_from_db()
    assert record.total_tokens == 10


def test_it_lets_only_a_superuser_delete_records(client, owner):
    record = spend(owner, tokens=10, now=None)
    helper = UserFactory(username="helper", is_staff=True)
    helper.user_permissions.add(*Permission.objects.filter(codename__endswith="usagerecord"))
    client.force_login(helper)
    assert client.get(f"/admin/usage/usagerecord/{record.pk}/delete/").status_code == 403


def test_it_searches_records_by_username_and_model(client, staff, owner, friend):
    spend(owner, tokens=10, now=None, model="findable-model")
    spend(friend, tokens=10, now=None, model="other-model")
    client.force_login(staff)
    response = client.get("/admin/usage/usagerecord/", {"q": "findable"})
    assert [row.model for row in response.context["cl"].result_list] == ["findable-model"]
    response = client.get("/admin/usage/usagerecord/", {"q": "friend"})
    assert [row.model for row in response.context["cl"].result_list] == ["other-model"]


def test_it_releases_expired_reservations_from_the_admin(client, staff, owner, friend):
    quota_reserve(
        user=owner, prompt_estimate=1, max_tokens=100, now=timezone.now() - timedelta(days=1)
    )
    live = quota_reserve(user=friend, prompt_estimate=1, max_tokens=100)
    client.force_login(staff)
    response = client.post(
        "/admin/usage/quotareservation/",
        {"action": "release_expired", "_selected_action": [str(live.id)]},
        follow=True,
    )
    assert "Released 1 expired reservation(s)." in response.content.decode()
    assert list(QuotaReservation.objects.values_list("id", flat=True)) == [live.id]


def test_it_edits_prices_in_the_list(client, staff):
    client.force_login(staff)
    page = client.get("/admin/usage/modelprice/").content.decode()
    assert 'name="form-0-input_per_mtok"' in page
    assert 'name="form-0-retired"' in page


def test_it_adds_usage_columns_to_the_user_admin(staff, owner):
    spend(owner, tokens=321, now=None)
    model_admin = type("UsageUserAdmin", (UserUsageAdminMixin, UserAdmin), {})(User, admin.site)
    request = RequestFactory().get("/admin/accounts/user/")
    request.user = staff
    assert model_admin.get_list_display(request)[-3:] == (
        "usage_today",
        "usage_total",
        "usage_cost",
    )
    row = model_admin.get_queryset(request).get(pk=owner.pk)
    assert model_admin.usage_today(row) == 321
    assert model_admin.usage_total(row) == 321
    assert model_admin.usage_cost(row) == "0.0000"


def test_it_lets_a_superuser_delete_a_record(client, staff, owner):
    record = spend(owner, tokens=10, now=None)
    client.force_login(staff)
    response = client.post(f"/admin/usage/usagerecord/{record.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not type(record).objects.filter(pk=record.pk).exists()
