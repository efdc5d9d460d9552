"""Conversations on the native API: server-side histories and multiplayer rooms.

Mounted under /api/inference (see inference/api.py); authentication is the
API's. Only a conversation's owner and the players invited into it may read or
add to it; for anyone else it does not exist (404). Only the owner may invite
players or delete it (403 for an invited player, who can see it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Router, Schema
from ninja.responses import Status
from pydantic import Field

from accounts.auth import Principal
from accounts.models import User
from games import realtime, selectors, services
from games.models import Conversation, Game
from inference.backends.base import ChatRequest, Message
from inference.errors import Forbidden, NotFound
from inference.rendering import chat_http_response
from inference.schemas import ChatOut, ErrorOut

router = Router(tags=["conversations"])

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 413: ErrorOut}
ERRORS.update({429: ErrorOut, 502: ErrorOut, 503: ErrorOut, 504: ErrorOut})
MAX_HISTORY_LIMIT = 200


class ConversationIn(Schema):
    game: str | None = Field(
        None, max_length=63, description="The game's slug; a game token always uses its own."
    )
    system: str | None = Field(None, max_length=100_000)
    model: str | None = Field(None, max_length=200)
    history_limit: int | None = Field(
        None,
        ge=0,
        le=MAX_HISTORY_LIMIT,
        description="How many of the latest stored messages go with each turn (default 20).",
    )
    token_cap: int | None = Field(
        None,
        ge=1,
        # The largest count a PositiveBigIntegerField stores everywhere.
        le=2**63 - 1,
        description="Tokens the conversation may use in all (default: no cap).",
    )


class ConversationOut(Schema):
    id: UUID
    game: str | None
    model: str
    history_limit: int
    token_cap: int | None
    tokens_used: int
    created_at: datetime


class MessageOut(Schema):
    role: str
    content: str
    created_at: datetime
    author: str | None = None


class ConversationDetailOut(ConversationOut):
    owner: str
    players: list[str]
    messages: list[MessageOut]


class TurnIn(Schema):
    content: str = Field(..., min_length=1, max_length=100_000)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)


class PlayerIn(Schema):
    username: str = Field(..., min_length=1, max_length=150)


class PlayersOut(Schema):
    players: list[str]


def _summary(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.pk,
        "game": conversation.game.slug if conversation.game else None,
        "model": conversation.model,
        "history_limit": conversation.history_limit,
        "token_cap": conversation.token_cap,
        "tokens_used": conversation.tokens_used,
        "created_at": conversation.created_at,
    }


async def _game_for_new(principal: Principal, slug: str | None) -> Game | None:
    """The game a new conversation belongs to: a game token's own, or `slug` if
    the player may play it."""
    if principal.game_id is not None:
        game = await selectors.agame_get(pk=principal.game_id)
        if slug is not None and slug != game.slug:
            raise Forbidden("This token is limited to another game.")
        return game
    if slug is None:
        return None
    try:
        return await sync_to_async(selectors.game_get_playable)(user=principal.user, slug=slug)
    except Http404:
        raise NotFound(f"game: no game {slug!r}.") from None


async def _owned(principal: Principal, conversation_id: UUID, action: str) -> Conversation:
    conversation = await realtime.conversation_for(principal, conversation_id)
    if conversation.owner_id != principal.user.pk:
        raise Forbidden(f"Only the conversation's owner can {action}.")
    return conversation


async def _turn_response(
    request: HttpRequest, *, conversation: Conversation, chat_request: ChatRequest, stream: bool
) -> HttpResponse:
    turn = await realtime.turn_begin(
        principal=request.auth, conversation=conversation, chat_request=chat_request
    )
    return await chat_http_response(turn, stream=stream, on_result=turn.store)


async def conversation_chat(
    request: HttpRequest, *, conversation_id: UUID, chat_request: ChatRequest, stream: bool
) -> HttpResponse:
    """`POST /chat` with `conversation`: `messages` is the player's turn (one user
    message), sent after the stored history; `system` adds to the conversation's."""
    conversation = await realtime.conversation_for(request.auth, conversation_id)
    return await _turn_response(
        request, conversation=conversation, chat_request=chat_request, stream=stream
    )


@router.post(
    "/conversations",
    response={201: ConversationOut, **ERRORS},
    summary="Start a conversation",
)
async def conversation_create(request: HttpRequest, payload: ConversationIn):
    """A server-side conversation (or multiplayer room) owned by the caller."""
    game = await _game_for_new(request.auth, payload.game)
    conversation = await sync_to_async(services.conversation_create)(
        owner=request.auth.user,
        game=game,
        system_prompt=payload.system or "",
        model=payload.model or "",
        history_limit=20 if payload.history_limit is None else payload.history_limit,
        token_cap=payload.token_cap,
    )
    return Status(201, _summary(conversation))


@router.post(
    "/conversations/{conversation_id}/messages",
    response={200: ChatOut, **ERRORS},
    summary="Take a turn in a conversation",
)
async def conversation_message(request: HttpRequest, conversation_id: UUID, payload: TurnIn):
    """Sends the stored history and this turn; answers like `/chat` (SSE with
    `stream: true`). The turn and the reply are stored when the answer succeeds.
    Turns of one conversation are answered one at a time, in order."""
    conversation = await realtime.conversation_for(request.auth, conversation_id)
    chat_request = ChatRequest(
        model="",
        messages=[Message(role="user", content=payload.content)],
        max_tokens=payload.max_tokens or settings.INFERENCE_DEFAULT_MAX_TOKENS,
    )
    return await _turn_response(
        request, conversation=conversation, chat_request=chat_request, stream=payload.stream
    )


@router.get(
    "/conversations/{conversation_id}",
    response={200: ConversationDetailOut, **ERRORS},
    summary="A conversation and its history",
)
async def conversation_detail(request: HttpRequest, conversation_id: UUID):
    conversation = await realtime.conversation_for(request.auth, conversation_id)
    messages = await selectors.aconversation_messages(conversation=conversation)
    players = await selectors.aconversation_players(conversation=conversation)
    return {
        **_summary(conversation),
        "owner": conversation.owner.username,
        "players": players,
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                "created_at": m.created_at,
                "author": m.author.username if m.author else None,
            }
            for m in messages
        ],
    }


@router.delete(
    "/conversations/{conversation_id}",
    response={204: None, **ERRORS},
    summary="Delete a conversation",
)
async def conversation_delete(request: HttpRequest, conversation_id: UUID):
    conversation = await _owned(request.auth, conversation_id, "delete it")
    await sync_to_async(services.conversation_delete)(conversation=conversation)
    await realtime.room_send(
        conversation_id, {"type": "room_closed", "conversation": str(conversation_id)}
    )
    return Status(204, None)


@router.post(
    "/conversations/{conversation_id}/players",
    response={200: PlayersOut, **ERRORS},
    summary="Invite a player into a conversation",
)
async def conversation_player_add(request: HttpRequest, conversation_id: UUID, payload: PlayerIn):
    """The owner invites a player who can see the conversation's game; they then
    join it by its id (the room code)."""
    conversation = await _owned(request.auth, conversation_id, "invite players")
    try:
        player = await sync_to_async(selectors.conversation_invitee_get)(
            conversation=conversation, username=payload.username
        )
    except User.DoesNotExist:
        raise NotFound(
            f"username: no player {payload.username!r} who can play this game."
        ) from None
    await sync_to_async(services.conversation_invite)(conversation=conversation, user=player)
    return {"players": await selectors.aconversation_players(conversation=conversation)}
