import pytest
from django.core.exceptions import PermissionDenied

from accounts.services import api_token_revoke


def test_it_revokes_the_owners_token(owner, owner_token):
    api_token_revoke(token=owner_token, by=owner)

    owner_token.refresh_from_db()
    assert owner_token.is_revoked
    assert not owner_token.is_usable


def test_it_keeps_the_first_revocation_time(owner, owner_token):
    api_token_revoke(token=owner_token, by=owner)
    first = owner_token.revoked_at

    api_token_revoke(token=owner_token, by=owner)

    owner_token.refresh_from_db()
    assert owner_token.revoked_at == first


def test_it_lets_staff_revoke(staff, owner_token):
    api_token_revoke(token=owner_token, by=staff)

    owner_token.refresh_from_db()
    assert owner_token.is_revoked


def test_it_refuses_anyone_else(outsider, owner_token):
    with pytest.raises(PermissionDenied):
        api_token_revoke(token=owner_token, by=outsider)

    owner_token.refresh_from_db()
    assert not owner_token.is_revoked
