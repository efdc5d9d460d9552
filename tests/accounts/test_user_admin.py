import pytest
from django.contrib.sessions.models import Session
from django.test import Client

CHANGELIST = "/admin/accounts/user/"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def _row(user, **changes) -> dict:
    row = {
        "form-0-id": str(user.pk),
        "form-0-token_limit": user.token_limit or "",
        "form-0-daily_token_limit": user.daily_token_limit or "",
        "form-0-rate_limit_per_minute": user.rate_limit_per_minute or "",
        "form-0-invites_remaining": user.invites_remaining,
    }
    if user.is_active:
        row["form-0-is_active"] = "on"
    for name, value in changes.items():
        if name == "is_active" and not value:
            row.pop("form-0-is_active", None)
        else:
            row[f"form-0-{name}"] = value
    return {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "_save": "Save",
        **row,
    }


def test_it_requires_staff(owner_client):
    response = owner_client.get(CHANGELIST)

    assert response.status_code == 302


def test_it_lists_searches_and_filters_users(admin_client, owner, friend):
    response = admin_client.get(CHANGELIST, {"q": "owner"})

    assert response.status_code == 200
    assert b"owner@example.com" in response.content
    assert b"friend@example.com" not in response.content
    filtered = admin_client.get(CHANGELIST, {"is_active__exact": "1"})
    assert filtered.status_code == 200


def test_it_edits_limits_and_invites_in_the_list(admin_client, owner):
    response = admin_client.post(
        f"{CHANGELIST}?q=owner",
        _row(owner, token_limit="5000", daily_token_limit="700", invites_remaining="3"),
    )

    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.token_limit == 5000
    assert owner.daily_token_limit == 700
    assert owner.invites_remaining == 3


def test_it_ends_sessions_when_deactivated_in_the_list(admin_client, owner):
    device = Client()
    device.force_login(owner)
    device.get("/")

    response = admin_client.post(f"{CHANGELIST}?q=owner", _row(owner, is_active=False))

    assert response.status_code == 302
    owner.refresh_from_db()
    assert not owner.is_active
    assert device.get("/tokens/").status_code == 302
    assert not [
        s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(owner.pk)
    ]


def test_it_deactivates_with_an_action(admin_client, owner, friend):
    response = admin_client.post(
        CHANGELIST, {"action": "deactivate", "_selected_action": [owner.pk]}
    )

    assert response.status_code == 302
    owner.refresh_from_db()
    friend.refresh_from_db()
    assert not owner.is_active
    assert friend.is_active


def test_it_shows_limits_on_the_change_page(admin_client, owner):
    response = admin_client.get(f"{CHANGELIST}{owner.pk}/change/")

    assert response.status_code == 200
    assert b"Limits and invites" in response.content
    assert b'name="rate_limit_per_minute"' in response.content
