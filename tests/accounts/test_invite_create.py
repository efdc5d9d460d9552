from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.services import NoInvitesLeft, invite_create
from tests.factories import UserFactory


def test_it_spends_one_of_the_creators_invites(owner):
    owner.invites_remaining = 2
    owner.save()

    invite = invite_create(created_by=owner, note="for Sam")

    assert invite.created_by == owner
    assert invite.note == "for Sam"
    assert invite.is_valid
    owner.refresh_from_db()
    assert owner.invites_remaining == 1


def test_it_refuses_when_no_invites_remain(owner):
    owner.invites_remaining = 0
    owner.save()

    with pytest.raises(NoInvitesLeft, match="no invites left"):
        invite_create(created_by=owner)


def test_it_lets_staff_invite_without_spending(staff):
    invite = invite_create(created_by=staff, max_uses=5)

    assert invite.max_uses == 5
    staff.refresh_from_db()
    assert staff.invites_remaining == 0


def test_it_allows_no_creator(db):
    invite = invite_create(created_by=None)

    assert invite.created_by is None


def test_it_uses_the_default_expiry(db, settings):
    invite = invite_create(created_by=None)

    expected = timezone.now() + timedelta(days=settings.INVITE_DEFAULT_EXPIRES_DAYS)
    assert abs(invite.expires_at - expected) < timedelta(seconds=5)


def test_it_sets_a_custom_expiry(db):
    invite = invite_create(created_by=None, expires_days=2)

    assert abs(invite.expires_at - (timezone.now() + timedelta(days=2))) < timedelta(seconds=5)


def test_it_rejects_zero_uses(db):
    with pytest.raises(ValidationError):
        invite_create(created_by=None, max_uses=0)


def test_it_never_spends_below_zero(db):
    user = UserFactory(invites_remaining=1)

    invite_create(created_by=user)
    with pytest.raises(NoInvitesLeft):
        invite_create(created_by=user)

    user.refresh_from_db()
    assert user.invites_remaining == 0
