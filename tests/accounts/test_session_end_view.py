import pytest
from allauth.usersessions.models import UserSession
from django.test import Client
from django.urls import reverse


def _signed_in(user, agent: str) -> Client:
    client = Client(HTTP_USER_AGENT=agent)
    client.force_login(user)
    client.get("/")
    return client


def _session_of(client: Client) -> UserSession:
    return UserSession.objects.get(session_key=client.session.session_key)


def _url(session: UserSession) -> str:
    return reverse("accounts:session_end", kwargs={"session_id": session.pk})


@pytest.fixture
def laptop(owner):
    return _signed_in(owner, "OwnerLaptop/1.0")


@pytest.fixture
def phone(owner):
    return _signed_in(owner, "OwnerPhone/2.0")


def test_it_requires_login(client, phone):
    response = client.post(_url(_session_of(phone)))

    assert response.status_code == 302
    assert UserSession.objects.filter(pk=_session_of(phone).pk).exists()


def test_it_rejects_get(laptop, phone):
    response = laptop.get(_url(_session_of(phone)))

    assert response.status_code == 405


def test_it_ends_another_session_of_the_same_user(laptop, phone):
    target = _session_of(phone)

    response = laptop.post(_url(target))

    assert response.status_code == 302
    assert response.url == reverse("usersessions_list")
    assert not UserSession.objects.filter(pk=target.pk).exists()
    assert phone.get(reverse("accounts:tokens")).status_code == 302
    assert laptop.get(reverse("accounts:tokens")).status_code == 200


def test_it_logs_out_when_ending_the_current_session(laptop):
    response = laptop.post(_url(_session_of(laptop)))

    assert response.status_code == 302
    assert "_auth_user_id" not in laptop.session


def test_it_is_a_404_for_a_friends_session(friend, phone):
    intruder = _signed_in(friend, "FriendTablet/3.0")
    target = _session_of(phone)

    response = intruder.post(_url(target))

    assert response.status_code == 404
    assert UserSession.objects.filter(pk=target.pk).exists()
    assert phone.get(reverse("accounts:tokens")).status_code == 200


def test_it_is_a_404_for_an_outsider(outsider, phone):
    intruder = _signed_in(outsider, "Somewhere/1.0")

    response = intruder.post(_url(_session_of(phone)))

    assert response.status_code == 404
