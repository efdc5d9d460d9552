from django.urls import reverse

from accounts.models import Invite
from tests.factories import InviteFactory

URL = "/invites/"


def test_it_is_served_at_the_invites_path():
    assert reverse("accounts:invites") == URL


def test_it_requires_login(client, db):
    response = client.get(URL)

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_it_lists_the_users_invites_with_full_links(owner_client, owner):
    invite = InviteFactory(created_by=owner, note="for Sam")

    response = owner_client.get(URL)

    assert response.status_code == 200
    assert f"http://testserver/invite/{invite.code}/".encode() in response.content
    assert b"for Sam" in response.content
    assert b"valid" in response.content


def test_it_shows_the_status_of_each_invite(owner_client, owner):
    InviteFactory(created_by=owner, uses=1, max_uses=1)

    response = owner_client.get(URL)

    assert b"used up" in response.content


def test_it_does_not_list_other_users_invites(owner_client, friend):
    invite = InviteFactory(created_by=friend)

    response = owner_client.get(URL)

    assert invite.code.encode() not in response.content


def test_it_creates_an_invite_and_spends_one(owner_client, owner):
    owner.invites_remaining = 1
    owner.save()

    response = owner_client.post(URL, {"note": "for Kim"})

    assert response.status_code == 302
    assert response.url == URL
    invite = Invite.objects.get(created_by=owner)
    assert invite.note == "for Kim"
    owner.refresh_from_db()
    assert owner.invites_remaining == 0
    page = owner_client.get(URL)
    assert invite.code.encode() in page.content
    assert b"Invite created" in page.content


def test_it_hides_the_form_when_no_invites_remain(owner_client):
    response = owner_client.get(URL)

    assert b"No invites left" in response.content
    assert b"Create invite" not in response.content


def test_it_refuses_to_create_when_no_invites_remain(owner_client, owner):
    response = owner_client.post(URL, {"note": "sneaky"}, follow=True)

    assert not Invite.objects.filter(created_by=owner).exists()
    assert b"no invites left" in response.content


def test_it_lets_staff_always_invite_with_several_uses(client, staff):
    client.force_login(staff)

    response = client.post(URL, {"note": "team", "max_uses": "5", "expires_days": "3"})

    assert response.status_code == 302
    invite = Invite.objects.get(created_by=staff)
    assert invite.max_uses == 5


def test_it_rejects_other_methods(owner_client):
    response = owner_client.delete(URL)

    assert response.status_code == 405
