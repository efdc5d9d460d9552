from django.urls import reverse

from tests.conftest import PASSWORD

LOGIN = "/accounts/login/"
LOGOUT = "/accounts/logout/"


def test_it_renders_the_login_page_in_the_site_layout(client, db):
    response = client.get(LOGIN)

    assert response.status_code == 200
    assert b"css/site.css" in response.content
    assert b'name="login"' in response.content
    assert b'name="password"' in response.content
    assert b"by invitation" in response.content
    assert b"<title>Log in" in response.content


def test_it_logs_in_with_a_username(client, owner):
    response = client.post(LOGIN, {"login": "owner", "password": PASSWORD})

    assert response.status_code == 302
    assert response.url == reverse("accounts:home")
    assert int(client.session["_auth_user_id"]) == owner.pk


def test_it_refuses_a_wrong_password(client, owner):
    response = client.post(LOGIN, {"login": "owner", "password": "wrong"})

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_it_refuses_an_inactive_user(client, owner):
    owner.is_active = False
    owner.save()

    client.post(LOGIN, {"login": "owner", "password": PASSWORD})

    assert "_auth_user_id" not in client.session


def test_it_renders_the_logout_page_in_the_site_layout(owner_client):
    response = owner_client.get(LOGOUT)

    assert response.status_code == 200
    assert b"css/site.css" in response.content
    assert b'action="/accounts/logout/"' in response.content


def test_it_does_not_log_out_on_get(owner_client):
    owner_client.get(LOGOUT)

    assert "_auth_user_id" in owner_client.session


def test_it_logs_out_on_post(owner_client):
    response = owner_client.post(LOGOUT)

    assert response.status_code == 302
    assert response.url == reverse("account_login")
    assert "_auth_user_id" not in owner_client.session
