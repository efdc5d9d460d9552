import pytest
from allauth.usersessions.models import UserSession
from django.test import Client
from django.urls import reverse

URL = "/accounts/sessions/"


def _signed_in(user, agent: str, ip: str) -> Client:
    client = Client(HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)
    client.force_login(user)
    client.get("/")  # the first page view records the session
    return client


@pytest.fixture
def laptop(owner):
    return _signed_in(owner, "OwnerLaptop/1.0", "10.0.0.1")


@pytest.fixture
def phone(owner):
    return _signed_in(owner, "OwnerPhone/2.0", "10.0.0.2")


@pytest.fixture
def friends_device(friend):
    return _signed_in(friend, "FriendTablet/3.0", "10.0.0.9")


def test_it_is_served_at_the_sessions_path():
    assert reverse("usersessions_list") == URL


def test_it_requires_login(client, db):
    response = client.get(URL)

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_it_lists_the_users_sessions_with_device_ip_and_last_seen(laptop, phone):
    response = laptop.get(URL)

    assert response.status_code == 200
    assert b"css/site.css" in response.content
    assert b"OwnerLaptop/1.0" in response.content
    assert b"OwnerPhone/2.0" in response.content
    assert b"10.0.0.2" in response.content
    assert b"Last seen" in response.content
    assert b"This device" in response.content


def test_it_never_shows_another_users_sessions(laptop, friends_device):
    response = laptop.get(URL)

    assert b"FriendTablet" not in response.content
    assert b"10.0.0.9" not in response.content


def test_it_ends_all_other_sessions(laptop, phone, owner):
    response = laptop.post(URL)

    assert response.status_code == 302
    assert UserSession.objects.filter(user=owner).count() == 1
    assert phone.get(reverse("accounts:tokens")).status_code == 302
    assert laptop.get(reverse("accounts:tokens")).status_code == 200
