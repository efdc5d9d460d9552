import pytest

from tests.factories import ApiTokenFactory

CHANGELIST = "/admin/accounts/apitoken/"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def test_it_never_shows_the_secret_or_its_hash(admin_client, owner_token):
    listing = admin_client.get(CHANGELIST)
    change = admin_client.get(f"{CHANGELIST}{owner_token.pk}/change/")

    for response in (listing, change):
        assert response.status_code == 200
        assert owner_token.secret.encode() not in response.content
        assert owner_token.token_hash.encode() not in response.content
    assert owner_token.prefix.encode() in listing.content


def test_it_offers_no_add_form(admin_client):
    response = admin_client.get(f"{CHANGELIST}add/")

    assert response.status_code == 403


def test_it_revokes_with_an_action(admin_client, owner_token):
    response = admin_client.post(
        CHANGELIST, {"action": "revoke", "_selected_action": [owner_token.pk]}
    )

    assert response.status_code == 302
    owner_token.refresh_from_db()
    assert owner_token.is_revoked


def test_it_filters_by_status(admin_client, owner_token, owner):
    revoked = ApiTokenFactory(owner=owner, name="gone-token")
    revoked.revoked_at = revoked.created_at
    revoked.save()

    active = admin_client.get(CHANGELIST, {"status": "active"}).content
    gone = admin_client.get(CHANGELIST, {"status": "revoked"}).content

    assert owner_token.prefix.encode() in active and b"gone-token" not in active
    assert b"gone-token" in gone
