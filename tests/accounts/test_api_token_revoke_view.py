from django.urls import reverse

from tests.factories import ApiTokenFactory


def _url(token) -> str:
    return reverse("accounts:token_revoke", kwargs={"token_id": token.pk})


def test_it_is_served_under_tokens(owner_token):
    assert _url(owner_token) == f"/tokens/{owner_token.pk}/revoke/"


def test_it_requires_login(client, owner_token):
    response = client.post(_url(owner_token))

    assert response.status_code == 302
    owner_token.refresh_from_db()
    assert not owner_token.is_revoked


def test_it_rejects_get(owner_client, owner_token):
    response = owner_client.get(_url(owner_token))

    assert response.status_code == 405
    owner_token.refresh_from_db()
    assert not owner_token.is_revoked


def test_it_revokes_the_owners_token(owner_client, owner_token):
    response = owner_client.post(_url(owner_token))

    assert response.status_code == 302
    assert response.url == reverse("accounts:tokens")
    owner_token.refresh_from_db()
    assert owner_token.is_revoked


def test_it_is_a_404_for_a_friends_token(client, friend, owner):
    token = ApiTokenFactory(owner=owner)
    client.force_login(friend)

    response = client.post(_url(token))

    assert response.status_code == 404
    token.refresh_from_db()
    assert not token.is_revoked


def test_it_is_a_404_for_an_outsider(client, outsider, owner_token):
    client.force_login(outsider)

    response = client.post(_url(owner_token))

    assert response.status_code == 404
