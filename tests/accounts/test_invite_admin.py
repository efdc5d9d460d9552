from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Invite
from tests.factories import InviteFactory

CHANGELIST = "/admin/accounts/invite/"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def test_it_creates_an_invite_with_an_automatic_code(admin_client, staff):
    expires = (timezone.now() + timedelta(days=3)).replace(microsecond=0)

    response = admin_client.post(
        f"{CHANGELIST}add/",
        {
            "note": "party",
            "max_uses": "4",
            "expires_at_0": expires.strftime("%Y-%m-%d"),
            "expires_at_1": expires.strftime("%H:%M:%S"),
        },
    )

    assert response.status_code == 302
    invite = Invite.objects.get()
    assert len(invite.code) >= 16
    assert invite.created_by == staff
    assert invite.max_uses == 4


def test_it_shows_the_full_link_read_only(admin_client, settings):
    settings.SITE_URL = "https://games.example.org"
    invite = InviteFactory()

    response = admin_client.get(f"{CHANGELIST}{invite.pk}/change/")

    assert f"https://games.example.org/invite/{invite.code}/".encode() in response.content
    assert b'name="code"' not in response.content


def test_it_filters_by_status(admin_client):
    valid = InviteFactory(note="still-good")
    InviteFactory(note="too-late", expires_at=timezone.now() - timedelta(days=1))
    InviteFactory(note="all-gone", uses=1, max_uses=1)

    expired = admin_client.get(CHANGELIST, {"status": "expired"}).content
    used_up = admin_client.get(CHANGELIST, {"status": "used_up"}).content
    still_valid = admin_client.get(CHANGELIST, {"status": "valid"}).content

    assert b"too-late" in expired and b"still-good" not in expired
    assert b"all-gone" in used_up and b"too-late" not in used_up
    assert valid.note.encode() in still_valid and b"all-gone" not in still_valid


def test_it_counts_the_accounts_created(admin_client, owner):
    invite = InviteFactory(uses=1)
    owner.invited_by = invite
    owner.save()

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    assert b'class="field-accounts_created">1<' in response.content
