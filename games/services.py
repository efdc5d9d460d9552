"""Writes for games and conversations. Views, the admin and commands call these."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import ApiToken, User, hash_token
from games import storage
from games.models import Conversation, ConversationMessage, Game
from games.validation import GamePackage

GAME_FIELDS = frozenset(
    {
        "title",
        "description",
        "visibility",
        "allowed_models",
        "default_model",
        "daily_token_limit_per_player",
        "system_prompt",
    }
)


def game_package_install(*, game: Game, package: GamePackage) -> Game:
    """Make `package` the game's files and bump its version.

    The row is locked while the files are swapped, so two uploads of one game
    cannot interleave; the version changes only once the new files are live.
    """
    with transaction.atomic():
        locked = Game.objects.select_for_update().get(pk=game.pk)
        storage.package_install(slug=locked.slug, package=package)
        Game.objects.filter(pk=game.pk).update(version=F("version") + 1, updated_at=timezone.now())
    game.refresh_from_db(fields=["version", "updated_at"])
    return game


def game_create(
    *,
    slug: str,
    owner: User | None,
    package: GamePackage,
    players: list[User] | None = None,
    **fields: Any,
) -> Game:
    """A new game with its files. The package has been validated already."""
    unknown = set(fields) - GAME_FIELDS
    if unknown:
        raise TypeError(f"unknown game fields: {', '.join(sorted(unknown))}")
    game = Game.objects.create(slug=slug, owner=owner, **fields)
    if players is not None:
        game.players.set(players)
    try:
        return game_package_install(game=game, package=package)
    except BaseException:
        game.delete()
        raise


def game_update(
    *,
    game: Game,
    package: GamePackage | None = None,
    players: list[User] | None = None,
    **fields: Any,
) -> Game:
    """Change a game's settings and, with a package, replace its files.

    All or nothing: a package refused while it is unpacked leaves the settings
    as they were too (the old files stay live).
    """
    unknown = set(fields) - GAME_FIELDS
    if unknown:
        raise TypeError(f"unknown game fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        for name, value in fields.items():
            setattr(game, name, value)
        if fields:
            game.save(update_fields=[*fields, "updated_at"])
        if players is not None:
            game.players.set(players)
        if package is not None:
            game_package_install(game=game, package=package)
    return game


def game_delete(*, game: Game) -> None:
    slug = game.slug
    game.delete()
    storage.package_remove(slug=slug)


def game_session_token_create(*, user: User, game: Game) -> str:
    """A short-lived token that works only for `game`, as `user`; returns the secret.

    Only the hash is stored. Each play page load makes one, so the user's
    expired game-session tokens are pruned at the same time.
    """
    now = timezone.now()
    ApiToken.objects.filter(
        owner=user, kind=ApiToken.Kind.GAME_SESSION, expires_at__lte=now
    ).delete()
    secret, prefix = ApiToken.generate_secret()
    ApiToken.objects.create(
        owner=user,
        name=f"Playing {game.title}"[:100],
        kind=ApiToken.Kind.GAME_SESSION,
        game=game,
        prefix=prefix,
        token_hash=hash_token(secret),
        expires_at=now + timedelta(seconds=settings.GAME_TOKEN_LIFETIME_S),
    )
    return secret


def conversation_create(
    *,
    owner: User,
    game: Game | None = None,
    system_prompt: str = "",
    model: str = "",
    history_limit: int = 20,
    token_cap: int | None = None,
) -> Conversation:
    return Conversation.objects.create(
        owner=owner,
        game=game,
        system_prompt=system_prompt,
        model=model,
        history_limit=history_limit,
        token_cap=token_cap,
    )


def conversation_add_turns(
    *,
    conversation: Conversation,
    user_content: str,
    author: User | None,
    reply_content: str,
    tokens: int,
) -> tuple[ConversationMessage, ConversationMessage]:
    """Store a player's turn and the reply together, and count the tokens.

    Both messages or neither: a history never holds a question without its answer.
    """
    with transaction.atomic():
        asked = ConversationMessage.objects.create(
            conversation=conversation,
            role=ConversationMessage.Role.USER,
            content=user_content,
            author=author,
        )
        answered = ConversationMessage.objects.create(
            conversation=conversation,
            role=ConversationMessage.Role.ASSISTANT,
            content=reply_content,
        )
        Conversation.objects.filter(pk=conversation.pk).update(
            tokens_used=F("tokens_used") + max(0, tokens), updated_at=timezone.now()
        )
    conversation.refresh_from_db(fields=["tokens_used", "updated_at"])
    return asked, answered


def conversation_invite(*, conversation: Conversation, user: User) -> None:
    """Let `user` read and add to the conversation (a multiplayer room)."""
    if user.pk != conversation.owner_id:
        conversation.players.add(user)


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


def conversation_max_tokens(*, conversation: Conversation, requested: int) -> int:
    """The completion budget a turn may have under the conversation's token cap.

    Lowers `requested` to what the cap has left; refuses the turn with
    QUOTA_EXCEEDED (limit "conversation") once the cap is used up, so a
    conversation never starts a turn past its cap.
    """
    from inference.errors import QuotaExceeded

    if conversation.token_cap is None:
        return requested
    left = conversation.token_cap - conversation.tokens_used
    if left < settings.QUOTA_MIN_COMPLETION_TOKENS:
        raise QuotaExceeded(
            f"This conversation's token cap of {conversation.token_cap:,} tokens is used up "
            f"({max(0, left):,} left). Start a new conversation.",
            details={
                "limit": "conversation",
                "limit_tokens": conversation.token_cap,
                "resets_at": None,
            },
        )
    return min(requested, left)
