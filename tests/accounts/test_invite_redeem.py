from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.services import InviteNotValid, invite_redeem
from tests.conftest import PASSWORD
from tests.factories import InviteFactory


def test_it_creates_the_user_from_the_invite(owner, settings):
    settings.INVITES_PER_NEW_USER = 2
    invite = InviteFactory(created_by=owner)

    user = invite_redeem(invite=invite, username="newbie", password=PASSWORD)

    assert user.invited_by == invite
    assert user.invites_remaining == 2
    assert user.check_password(PASSWORD)
    assert user.is_active and not user.is_staff
    invite.refresh_from_db()
    assert invite.uses == 1
    assert invite.is_used_up


def test_it_refuses_a_used_up_invite(owner):
    invite = InviteFactory(created_by=owner, uses=1, max_uses=1)

    with pytest.raises(InviteNotValid) as caught:
        invite_redeem(invite=invite, username="newbie", password=PASSWORD)

    assert caught.value.reason == "used_up"


def test_it_refuses_an_expired_invite(owner):
    invite = InviteFactory(created_by=owner, expires_at=timezone.now() - timedelta(minutes=1))

    with pytest.raises(InviteNotValid) as caught:
        invite_redeem(invite=invite, username="newbie", password=PASSWORD)

    assert caught.value.reason == "expired"


def test_it_rechecks_the_invite_in_the_database(owner):
    invite = InviteFactory(created_by=owner, max_uses=1)
    stale = type(invite).objects.get(pk=invite.pk)
    invite_redeem(invite=invite, username="first", password=PASSWORD)

    # `stale` still says uses=0; the locked row in the database does not.
    with pytest.raises(InviteNotValid):
        invite_redeem(invite=stale, username="second", password=PASSWORD)


def test_it_allows_several_uses(owner):
    invite = InviteFactory(created_by=owner, max_uses=2)

    invite_redeem(invite=invite, username="first", password=PASSWORD)
    invite_redeem(invite=invite, username="second", password=PASSWORD)

    invite.refresh_from_db()
    assert invite.uses == 2
    assert invite.accounts.count() == 2


def test_it_rejects_a_taken_username_in_any_case(owner):
    invite = InviteFactory(created_by=owner)

    with pytest.raises(ValidationError):
        invite_redeem(invite=invite, username="OWNER", password=PASSWORD)

    invite.refresh_from_db()
    assert invite.uses == 0


def test_it_rejects_a_weak_password(owner):
    invite = InviteFactory(created_by=owner)

    with pytest.raises(ValidationError):
        invite_redeem(invite=invite, username="newbie", password="123")

    invite.refresh_from_db()
    assert invite.uses == 0
