"""Reads of the accounts app."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import ApiToken, Invite, User


def invite_status(invite: Invite) -> str:
    """`valid`, `expired` or `used up`: what a person reading the list needs."""
    if invite.is_used_up:
        return "used up"
    if invite.is_expired:
        return "expired"
    return "valid"


def invite_list_for_user(*, user: User) -> QuerySet[Invite]:
    return (
        Invite.objects.filter(created_by=user)
        .annotate(accounts_created=Count("accounts"))
        .order_by("-created_at")
    )


def invite_get_by_code(*, code: str) -> Invite | None:
    return Invite.objects.filter(code=code).first()


def user_may_invite(*, user: User) -> bool:
    return user.is_staff or user.invites_remaining > 0


def api_token_status(token: ApiToken) -> str:
    if token.is_revoked:
        return "revoked"
    if token.is_expired:
        return "expired"
    return "active"


def api_token_list_for_user(*, user: User) -> QuerySet[ApiToken]:
    """The personal tokens a user manages; short-lived game-session tokens are
    minted by the play page and would only clutter the list."""
    return (
        ApiToken.objects.filter(owner=user, kind=ApiToken.Kind.PERSONAL)
        .select_related("game")
        .order_by("-created_at")
    )


def api_token_get_for_owner(*, user: User, token_id: int) -> ApiToken:
    """The token `token_id` if `user` owns it; anyone else's is a 404."""
    return get_object_or_404(ApiToken, pk=token_id, owner=user)


def game_list_for_token_choice(*, user: User):
    """Games a user may scope a token to: those they can see."""
    from games.models import Game

    if user.is_staff:
        return Game.objects.all()
    return Game.objects.filter(
        Q(visibility=Game.Visibility.EVERYONE) | Q(owner=user) | Q(players=user)
    ).distinct()
