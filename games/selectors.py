"""Reads for games and conversations: who may see what, and what they used."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Q, QuerySet, Sum
from django.http import Http404

from accounts.models import User
from games.models import Conversation, ConversationMessage, Game
from usage.clock import usage_day
from usage.models import UsageRecord


def games_visible_to(*, user: User) -> QuerySet[Game]:
    """Games `user` may play: open to everyone, shared with them, or their own."""
    if user.is_staff:
        return Game.objects.all()
    return Game.objects.filter(
        Q(visibility=Game.Visibility.EVERYONE) | Q(players=user) | Q(owner=user)
    ).distinct()


def game_get_playable(*, user: User, slug: str) -> Game:
    """The game `slug` if `user` may play it; otherwise Http404, as if it did not exist."""
    if not user.is_authenticated or not user.is_active:
        raise Http404("No such game.")
    game = games_visible_to(user=user).filter(slug=slug).first()
    if game is None:
        raise Http404("No such game.")
    return game


def game_may_edit(*, user: User, game: Game) -> bool:
    """Owners and staff may change a game's settings and files."""
    return user.is_staff or (game.owner_id is not None and game.owner_id == user.pk)


@dataclass(frozen=True, slots=True)
class GameUsage:
    today: int = 0
    total: int = 0


def game_usage_by_game(*, user: User, games=None) -> dict[int, GameUsage]:
    """Tokens `user` spent per game, today and in all, keyed by game id.

    One query, aggregated in the database from the usage records.
    """
    today = usage_day()
    records = UsageRecord.objects.filter(user=user, game__isnull=False)
    if games is not None:
        records = records.filter(game__in=games)
    rows = records.values("game_id").annotate(
        total=Sum("total_tokens"), today=Sum("total_tokens", filter=Q(day=today))
    )
    return {
        row["game_id"]: GameUsage(today=row["today"] or 0, total=row["total"] or 0) for row in rows
    }


def game_usage(*, user: User, game: Game) -> GameUsage:
    return game_usage_by_game(user=user, games=[game]).get(game.pk, GameUsage())


def _conversations_for(user: User) -> QuerySet[Conversation]:
    return Conversation.objects.filter(Q(owner=user) | Q(players=user)).distinct()


def _as_uuid(conversation_id) -> uuid.UUID:
    try:
        return (
            conversation_id
            if isinstance(conversation_id, uuid.UUID)
            else uuid.UUID(str(conversation_id))
        )
    except ValueError:
        raise Conversation.DoesNotExist("No such conversation.") from None


def conversation_get_for_user(*, user: User, conversation_id) -> Conversation:
    """The conversation if `user` owns it or was invited to it.

    Raises Conversation.DoesNotExist otherwise (a malformed id too), which the
    caller reports as a 404: another user's conversation does not exist.
    """
    return (
        _conversations_for(user).select_related("game", "owner").get(pk=_as_uuid(conversation_id))
    )


async def aconversation_get_for_user(*, user: User, conversation_id) -> Conversation:
    return (
        await _conversations_for(user)
        .select_related("game", "owner")
        .aget(pk=_as_uuid(conversation_id))
    )


def conversation_history(*, conversation: Conversation, limit: int) -> list[ConversationMessage]:
    """The last `limit` messages, oldest first."""
    if limit <= 0:
        return []
    latest = list(conversation.messages.select_related("author").order_by("-id")[:limit])
    latest.reverse()
    return latest


async def aconversation_history(
    *, conversation: Conversation, limit: int
) -> list[ConversationMessage]:
    if limit <= 0:
        return []
    latest = [
        message
        async for message in conversation.messages.select_related("author").order_by("-id")[:limit]
    ]
    latest.reverse()
    return latest


async def aconversation_messages(*, conversation: Conversation) -> list[ConversationMessage]:
    """Every message of the conversation, oldest first, with its author."""
    return [message async for message in conversation.messages.select_related("author")]


async def aconversation_players(*, conversation: Conversation) -> list[str]:
    """The usernames of the players invited to the conversation."""
    return [
        username
        async for username in conversation.players.order_by("username").values_list(
            "username", flat=True
        )
    ]


def conversation_invitee_get(*, conversation: Conversation, username: str) -> User:
    """The active user `username` if they may play the conversation's game.

    Raises User.DoesNotExist otherwise: a player who cannot see the game cannot
    be invited into one of its rooms.
    """
    user = User.objects.get(username=username, is_active=True)
    visible = games_visible_to(user=user)
    if conversation.game_id is not None and not visible.filter(pk=conversation.game_id).exists():
        raise User.DoesNotExist("This player cannot see the game.")
    return user


async def agame_get(*, pk: int) -> Game:
    return await Game.objects.aget(pk=pk)
