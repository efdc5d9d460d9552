"""Writes of the accounts app: invites, API tokens, deactivation.

Views, admin actions and management commands call these; none of them
re-implements a rule kept here.
"""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import ApiToken, Invite, User, hash_token


class NoInvitesLeft(Exception):
    """The user has used up the invites they were given."""

    def __init__(self) -> None:
        super().__init__("You have no invites left. An admin can give you more.")


class InviteNotValid(Exception):
    """The invite is expired or used up; `reason` says which."""

    def __init__(self, invite: Invite) -> None:
        self.invite = invite
        self.reason = "expired" if invite.is_expired else "used_up"
        message = (
            "This invite has expired." if self.reason == "expired" else "This invite is used up."
        )
        super().__init__(message)


@transaction.atomic
def invite_create(
    *,
    created_by: User | None,
    max_uses: int = 1,
    expires_days: int | None = None,
    note: str = "",
) -> Invite:
    """Create a sign-up invite.

    A user who is not staff spends one of their `invites_remaining`; the count
    never goes below zero, even when two invites are created at once.
    """
    if max_uses < 1:
        raise ValidationError({"max_uses": "An invite must allow at least one sign-up."})
    if expires_days is not None and expires_days < 1:
        raise ValidationError({"expires_days": "An invite must be valid for at least a day."})
    if created_by is not None and not created_by.is_staff:
        # A conditional UPDATE is the check and the deduction in one statement,
        # so concurrent requests cannot both spend the last invite.
        spent = User.objects.filter(pk=created_by.pk, invites_remaining__gt=0).update(
            invites_remaining=F("invites_remaining") - 1
        )
        if not spent:
            raise NoInvitesLeft()
        created_by.refresh_from_db(fields=["invites_remaining"])
    invite = Invite(created_by=created_by, max_uses=max_uses, note=note)
    if expires_days is not None:
        invite.expires_at = timezone.now() + timedelta(days=expires_days)
    invite.save()
    return invite


@transaction.atomic
def invite_redeem(*, invite: Invite, username: str, password: str) -> User:
    """Create the account an invite was sent for.

    The invite is locked and rechecked inside the transaction, so it never
    creates more accounts than `max_uses`, nor any once it has expired.
    """
    locked = Invite.objects.select_for_update().get(pk=invite.pk)
    if not locked.is_valid:
        raise InviteNotValid(locked)
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "A user with that username already exists."})
    candidate = User(username=username)
    validate_password(password, user=candidate)
    locked.uses = F("uses") + 1
    locked.save(update_fields=["uses"])
    locked.refresh_from_db(fields=["uses"])
    invite.uses = locked.uses
    user = User.objects.create_user(
        username=username,
        password=password,
        invited_by=locked,
        invites_remaining=settings.INVITES_PER_NEW_USER,
    )
    return user


def api_token_create(
    *,
    owner: User,
    name: str,
    game=None,
    expires_days: int | None = None,
    kind: str = ApiToken.Kind.PERSONAL,
    lifetime: timedelta | None = None,
) -> tuple[ApiToken, str]:
    """Create an API token and return it with its secret.

    The secret exists only in the return value: the database keeps its hash
    and a short prefix, so nobody (admins included) can read it back later.
    Without an explicit expiry, `API_TOKEN_LIFETIME_DAYS` applies (0: never).
    """
    if expires_days is not None and expires_days < 1:
        raise ValidationError({"expires_days": "A token must be valid for at least a day."})
    now = timezone.now()
    if lifetime is not None:
        expires_at = now + lifetime
    elif expires_days is not None:
        expires_at = now + timedelta(days=expires_days)
    elif settings.API_TOKEN_LIFETIME_DAYS:
        expires_at = now + timedelta(days=settings.API_TOKEN_LIFETIME_DAYS)
    else:
        expires_at = None
    secret, prefix = ApiToken.generate_secret()
    token = ApiToken.objects.create(
        owner=owner,
        name=name,
        game=game,
        kind=kind,
        prefix=prefix,
        token_hash=hash_token(secret),
        expires_at=expires_at,
    )
    return token, secret


def api_token_revoke(*, token: ApiToken, by: User) -> ApiToken:
    """Revoke a token for good. Only its owner or staff may; revoking twice keeps
    the first revocation time."""
    if by.pk != token.owner_id and not by.is_staff:
        raise PermissionDenied("Only the token's owner can revoke it.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def user_sessions_end(*, user: User) -> int:
    """End every browser session of `user`, tracked or not. Returns how many."""
    from allauth.usersessions.models import UserSession

    ended = 0
    for user_session in UserSession.objects.filter(user_id=user.pk):
        user_session.end()
        ended += 1
    # Sessions opened before tracking, or on paths it skips, have no
    # UserSession row; with database sessions they can still be found.
    engine = import_module(settings.SESSION_ENGINE)
    get_model_class = getattr(engine.SessionStore, "get_model_class", None)
    if get_model_class is not None:
        sessions = get_model_class().objects.filter(expire_date__gt=timezone.now())
        for session in sessions.iterator():
            if session.get_decoded().get("_auth_user_id") == str(user.pk):
                session.delete()
                ended += 1
    return ended


def user_deactivate(*, user: User) -> User:
    """Deactivate a user. Their sessions end at once (see `accounts.signals`);
    their tokens stop working because authentication checks `is_active`."""
    user.is_active = False
    user.save(update_fields=["is_active"])
    return user
