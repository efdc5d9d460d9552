from __future__ import annotations

import csv
import io

import pytest

from tests.factories import UserFactory
from tests.usage.conftest import spend

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/usage/all/", "/usage/all.csv"])
def test_it_requires_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("url", ["/usage/all/", "/usage/all.csv"])
def test_it_refuses_users_who_are_not_staff(client, owner, friend, url):
    for user in (owner, friend):
        client.force_login(user)
        assert client.get(url).status_code == 403


def test_it_shows_every_users_figures_to_staff(client, staff, owner, friend):
    spend(friend, tokens=4321, now=None)
    client.force_login(staff)
    response = client.get("/usage/all/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "friend" in page and "owner" in page
    assert "4,321" in page


def test_it_exports_csv_to_staff(client, staff, friend):
    spend(friend, tokens=700, now=None)
    UserFactory(username="-danger")
    client.force_login(staff)
    response = client.get("/usage/all.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_name = {row["username"]: row for row in rows}
    assert by_name["friend"]["used_total"] == "700"
    assert by_name["friend"]["requests"] == "1"
    assert "'-danger" in by_name  # a leading "-" would run as a formula in a spreadsheet


def test_it_rejects_post(client, staff):
    client.force_login(staff)
    assert client.post("/usage/all/").status_code == 405
