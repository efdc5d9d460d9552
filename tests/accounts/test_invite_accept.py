from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from tests.conftest import PASSWORD
from tests.factories import InviteFactory


@pytest.fixture
def invite(owner):
    return InviteFactory(created_by=owner)


def _url(invite):
    return reverse("accounts:invite_accept", kwargs={"code": invite.code})


def test_it_is_served_at_the_invite_path(invite):
    assert _url(invite) == f"/invite/{invite.code}/"


def test_it_shows_the_form_for_a_valid_invite(client, invite):
    response = client.get(_url(invite))

    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="password1"' in response.content
    assert b"owner invited you" in response.content
    assert b"css/site.css" in response.content


def test_it_creates_the_account_logs_in_and_redirects_home(client, invite):
    response = client.post(
        _url(invite), {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD}
    )

    assert response.status_code == 302
    assert response.url == reverse("accounts:home")
    user = User.objects.get(username="newbie")
    assert user.invited_by == invite
    assert int(client.session["_auth_user_id"]) == user.pk
    home = client.get(response.url)
    assert b"Hello, newbie" in home.content


def test_it_rejects_mismatched_passwords(client, invite):
    response = client.post(
        _url(invite), {"username": "newbie", "password1": PASSWORD, "password2": "other"}
    )

    assert response.status_code == 200
    assert not User.objects.filter(username="newbie").exists()
    invite.refresh_from_db()
    assert invite.uses == 0


def test_it_validates_the_password(client, invite):
    response = client.post(
        _url(invite), {"username": "newbie", "password1": "12345678", "password2": "12345678"}
    )

    assert response.status_code == 200
    assert b"too common" in response.content or b"entirely numeric" in response.content
    assert not User.objects.filter(username="newbie").exists()


def test_it_rejects_a_taken_username(client, invite):
    response = client.post(
        _url(invite), {"username": "Owner", "password1": PASSWORD, "password2": PASSWORD}
    )

    assert response.status_code == 200
    assert b"already exists" in response.content


def test_it_says_gone_for_a_used_up_invite(client, owner):
    invite = InviteFactory(created_by=owner, uses=1, max_uses=1)

    response = client.get(_url(invite))

    assert response.status_code == 410
    assert b"This invite has been used" in response.content
    assert b'name="password1"' not in response.content


def test_it_says_gone_for_an_expired_invite(client, owner):
    invite = InviteFactory(created_by=owner, expires_at=timezone.now() - timedelta(seconds=1))

    response = client.get(_url(invite))

    assert response.status_code == 410
    assert b"This invite has expired" in response.content
    assert b'name="password1"' not in response.content


def test_it_refuses_a_post_to_a_used_up_invite(client, owner):
    invite = InviteFactory(created_by=owner, uses=1, max_uses=1)

    response = client.post(
        _url(invite), {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD}
    )

    assert response.status_code == 410
    assert not User.objects.filter(username="newbie").exists()


def test_it_says_not_found_for_an_unknown_code(client, db):
    response = client.get("/invite/no-such-code/")

    assert response.status_code == 404
    assert b"This invite link is not valid" in response.content
    assert b'name="password1"' not in response.content


def test_it_does_not_create_a_second_account_for_a_signed_in_user(owner_client, invite):
    response = owner_client.post(
        _url(invite), {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD}
    )

    assert response.status_code == 200
    assert b"already signed in" in response.content
    assert not User.objects.filter(username="newbie").exists()
