from django.urls import reverse


def test_it_is_the_site_root():
    assert reverse("accounts:home") == "/"


def test_it_welcomes_anonymous_visitors_with_a_login_link(client, db):
    response = client.get("/")

    assert response.status_code == 200
    assert b"Vanilla Game Platform" in response.content
    assert b'href="/accounts/login/"' in response.content
    assert b"Log out" not in response.content


def test_it_links_signed_in_users_to_games_usage_and_tokens(owner_client):
    response = owner_client.get("/")

    assert b"Hello, owner" in response.content
    for name in ("games:list", "usage:dashboard", "accounts:tokens", "accounts:invites"):
        assert f'href="{reverse(name)}"'.encode() in response.content


def test_it_has_the_site_navigation(owner_client):
    response = owner_client.get("/")

    content = response.content.decode()
    assert f'href="{reverse("usersessions_list")}"' in content
    assert f'action="{reverse("account_logout")}"' in content
    assert 'name="csrf-token"' in content
    assert f'href="{reverse("admin:index")}"' not in content


def test_it_shows_the_admin_link_to_staff(client, staff):
    client.force_login(staff)

    response = client.get("/")

    assert f'href="{reverse("admin:index")}"'.encode() in response.content


def test_it_shows_flash_messages(owner_client, owner_token):
    owner_client.post(reverse("accounts:token_revoke", kwargs={"token_id": owner_token.pk}))

    response = owner_client.get("/")

    assert b"Revoked the token" in response.content
