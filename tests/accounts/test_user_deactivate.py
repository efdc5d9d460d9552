from allauth.usersessions.models import UserSession
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from accounts.services import user_deactivate


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    client.get("/")
    return client


def _sessions_of(user) -> list[Session]:
    return [
        s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(user.pk)
    ]


def test_it_deactivates_the_user(owner):
    user_deactivate(user=owner)

    owner.refresh_from_db()
    assert not owner.is_active


def test_it_ends_the_users_sessions_at_once(owner, friend):
    device = _signed_in(owner)
    friends_device = _signed_in(friend)
    assert _sessions_of(owner)

    user_deactivate(user=owner)

    assert _sessions_of(owner) == []
    assert not UserSession.objects.filter(user=owner).exists()
    assert device.get(reverse("accounts:tokens")).status_code == 302
    assert friends_device.get(reverse("accounts:tokens")).status_code == 200


def test_it_ends_sessions_that_were_never_tracked(owner):
    client = Client()
    client.force_login(owner)  # no page view yet: no UserSession row
    assert not UserSession.objects.filter(user=owner).exists()

    user_deactivate(user=owner)

    assert _sessions_of(owner) == []


def test_it_ends_sessions_whenever_the_user_is_saved_inactive(owner):
    _signed_in(owner)

    owner.is_active = False
    owner.save()

    assert _sessions_of(owner) == []


def test_it_leaves_sessions_alone_on_other_saves(owner):
    _signed_in(owner)

    owner.email = "new@example.com"
    owner.save()

    assert _sessions_of(owner)
