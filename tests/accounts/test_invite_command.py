from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Invite


def _run(*args) -> str:
    out = StringIO()
    call_command("invite", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_full_sign_up_url_last(db, settings):
    settings.SITE_URL = "https://games.example.org"

    output = _run()

    invite = Invite.objects.get()
    assert output.strip().splitlines()[-1] == f"https://games.example.org/invite/{invite.code}/"


def test_it_takes_uses_expiry_creator_and_note(staff):
    _run("--uses", "3", "--expires-days", "2", "--by", "staff", "--note", "book club")

    invite = Invite.objects.get()
    assert invite.max_uses == 3
    assert invite.created_by == staff
    assert invite.note == "book club"


def test_it_spends_a_non_staff_creators_invite(owner):
    owner.invites_remaining = 1
    owner.save()

    _run("--by", "owner")

    owner.refresh_from_db()
    assert owner.invites_remaining == 0
    with pytest.raises(CommandError, match="no invites left"):
        _run("--by", "owner")


def test_it_rejects_an_unknown_user(db):
    with pytest.raises(CommandError, match="No user named"):
        _run("--by", "nobody")


def test_it_rejects_zero_uses(db):
    with pytest.raises(CommandError, match="at least one"):
        _run("--uses", "0")
