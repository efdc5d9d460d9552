"""Conversation turns and multiplayer rooms.

A turn is one player's action and the model's reply to it. The turns of one
conversation never overlap: each waits for the one before it to be answered and
stored, so every reply is written with the whole story so far (`TurnLock`).

A room is the set of WebSockets that sent `{type: "join", conversation}`. Every
turn, whoever took it and over whichever API, is told to the room through the
channel layer (Redis when `REDIS_URL` is set, so rooms span workers): the
player's action as `room_action`, the reply as `stream_chunk`s and a
`stream_end`, each with `conversation`, `turn` and `author`. The player who
took the turn over the socket gets their own copy directly, with their request
`id`, and not a second one through the room. Wire shapes: docs/games.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache

from games import selectors, services
from games.models import Conversation, ConversationMessage
from inference.backends.base import ChatRequest, Event, Message, TextDelta
from inference.errors import ApiError, Forbidden, InferenceTimeout, InvalidRequest, NotFound
from inference.rendering import stream_end_message
from inference.schemas import check_bounds
from inference.services import STREAM_START_GRACE_S, ChatResult, ChatRun, chat_start

if TYPE_CHECKING:
    from accounts.auth import Principal
    from inference.consumers import InferenceConsumer
    from inference.schemas import ChatIn

logger = logging.getLogger(__name__)

# A worker that dies mid-turn holds its room for at most this long.
TURN_LOCK_TTL_S = 30
TURN_LOCK_POLL_S = 0.05
# Room members get the reply in pieces at most this often: a fast model would
# otherwise fill the channel layer's per-channel queue (100 messages), and
# group_send drops what does not fit.
ROOM_FLUSH_S = 0.05
MAX_ROOMS_PER_SOCKET = 16
# Keeps the clean-ups of abandoned turns alive until they finish.
_abandoning: set[asyncio.Task] = set()


# --- access ----------------------------------------------------------------------------


async def conversation_for(principal: Principal, conversation_id: Any) -> Conversation:
    """The conversation `principal` may read and add to, or the error that says no.

    Its owner and invited players only; anyone else is told it does not exist
    (NOT_FOUND). A game-scoped token reaches only its own game's conversations
    (FORBIDDEN otherwise, as for chat).
    """
    try:
        conversation = await selectors.aconversation_get_for_user(
            user=principal.user, conversation_id=conversation_id
        )
    except Conversation.DoesNotExist:
        raise NotFound("No such conversation.") from None
    if principal.game_id is not None and conversation.game_id != principal.game_id:
        raise Forbidden("This token is limited to another game.")
    return conversation


# --- one turn at a time ------------------------------------------------------------------


class TurnLock:
    """One turn at a time per conversation, on every worker.

    A mutex on the shared cache: `cache.add` is an atomic SET NX on Redis (and
    atomic in the local-memory cache of a single process), with an expiry that a
    heartbeat renews while the turn makes progress, so a crashed worker holds a
    room for at most TURN_LOCK_TTL_S. Within a worker, an asyncio lock queues
    the waiters first come, first served, and only the first of them polls the
    cache; across workers, the waiting turns go in the order they poll.
    """

    _local: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, list]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, conversation_id: Any) -> None:
        self.key = f"games:turn:{conversation_id}"
        self.owner = uuid.uuid4().hex
        self.progress_at = time.monotonic()
        self._entry: list | None = None
        self._held = False
        self._heartbeat: asyncio.Task | None = None

    async def acquire(self) -> None:
        """Wait for the turns before this one; INFERENCE_TIMEOUT if they take too long."""
        locks = self._local.setdefault(asyncio.get_running_loop(), {})
        entry = locks.setdefault(self.key, [asyncio.Lock(), 0])
        entry[1] += 1
        self._entry = entry
        try:
            async with asyncio.timeout(settings.INFERENCE_TIMEOUT_S):
                await self._acquire(entry[0])
        except TimeoutError:
            self._forget_entry()
            raise InferenceTimeout(
                "The room is busy: the turns before yours did not finish in time."
            ) from None
        except BaseException:
            self._forget_entry()
            raise
        self._held = True
        self.progress_at = time.monotonic()
        self._heartbeat = asyncio.create_task(self._beat())

    async def _acquire(self, local: asyncio.Lock) -> None:
        await local.acquire()
        try:
            # Polled: the holder may be another worker, which cannot wake us.
            while True:
                if await self._cache_add():
                    return
                await asyncio.sleep(TURN_LOCK_POLL_S)
        except BaseException:
            local.release()
            raise

    async def _cache_add(self) -> bool:
        adding = asyncio.ensure_future(cache.aadd(self.key, self.owner, TURN_LOCK_TTL_S))
        try:
            return await asyncio.shield(adding)
        except asyncio.CancelledError:
            # The add runs in a thread and may have happened all the same.
            if await adding:
                await self._cache_delete()
            raise

    async def _cache_delete(self) -> None:
        if await cache.aget(self.key) == self.owner:
            await cache.adelete(self.key)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(TURN_LOCK_TTL_S / 3)
            # A turn that stopped moving (the upstream times out long before
            # this) is left to expire rather than kept alive for ever.
            if time.monotonic() - self.progress_at > settings.INFERENCE_TIMEOUT_S:
                return
            try:
                await cache.atouch(self.key, TURN_LOCK_TTL_S)
            except Exception:
                logger.warning("renewing the turn lock %s failed", self.key, exc_info=True)

    def _forget_entry(self) -> None:
        entry, self._entry = self._entry, None
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            locks = self._local.get(asyncio.get_running_loop(), {})
            if locks.get(self.key) is entry:
                del locks[self.key]

    async def release(self) -> None:
        """Let the next turn go. Safe to call more than once."""
        if not self._held:
            return
        self._held = False
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        try:
            await asyncio.shield(self._cache_delete())
        except Exception:
            logger.warning("releasing the turn lock %s failed", self.key, exc_info=True)
        finally:
            if self._entry is not None:
                self._entry[0].release()
            self._forget_entry()


# --- rooms -----------------------------------------------------------------------------


def room_group(conversation_id: Any) -> str:
    return f"conversation.{conversation_id}"


async def room_send(conversation_id: Any, message: dict[str, Any], *, sender: str = "") -> None:
    """Tell everyone in the room, except the socket `sender` (it has its own copy)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(
            room_group(conversation_id),
            {"type": "room.message", "message": message, "sender": sender},
        )
    except Exception:
        # The room is a view on the turn; the turn itself goes on.
        logger.warning("telling room %s failed", conversation_id, exc_info=True)


def _rooms(consumer: InferenceConsumer) -> set[str]:
    if not hasattr(consumer, "rooms"):
        consumer.rooms = set()
    return consumer.rooms


def _echo(content: dict[str, Any]) -> dict[str, Any]:
    """The request's `id` and `conversation`, echoed when they are short strings."""
    echo = {}
    for name in ("id", "conversation"):
        value = content.get(name)
        if isinstance(value, str) and len(value) <= 100:
            echo[name] = value
    return echo


async def room_join(*, consumer: InferenceConsumer, content: dict[str, Any]) -> None:
    """`{type: "join", conversation}`: receive the room's turns (owner and invited only)."""
    assert consumer.principal is not None
    try:
        conversation = await conversation_for(consumer.principal, content.get("conversation"))
        rooms = _rooms(consumer)
        group = room_group(conversation.pk)
        if group not in rooms and len(rooms) >= MAX_ROOMS_PER_SOCKET:
            raise InvalidRequest(f"A socket may be in at most {MAX_ROOMS_PER_SOCKET} rooms.")
    except ApiError as error:
        await consumer.send_json({"type": "error", **_echo(content), **error.to_dict()})
        return
    await consumer.channel_layer.group_add(group, consumer.channel_name)
    rooms.add(group)
    conversation_id = str(conversation.pk)
    await consumer.send_json({**_echo(content), "type": "joined", "conversation": conversation_id})
    await room_send(
        conversation.pk,
        {
            "type": "player_joined",
            "conversation": conversation_id,
            "author": consumer.principal.user.username,
        },
        sender=consumer.channel_name,
    )


async def room_leave(*, consumer: InferenceConsumer, content: dict[str, Any]) -> None:
    """`{type: "leave", conversation}`: stop receiving the room's turns."""
    conversation_id = content.get("conversation")
    group = room_group(conversation_id)
    rooms = _rooms(consumer)
    if group in rooms:
        rooms.discard(group)
        await consumer.channel_layer.group_discard(group, consumer.channel_name)
    await consumer.send_json({**_echo(content), "type": "left"})


async def rooms_leave_all(*, consumer: InferenceConsumer) -> None:
    for group in list(_rooms(consumer)):
        await consumer.channel_layer.group_discard(group, consumer.channel_name)
    _rooms(consumer).clear()


# --- a turn ------------------------------------------------------------------------------


def player_turn(chat_request: ChatRequest) -> str:
    """The player's action: the one user message a conversation turn sends."""
    messages = chat_request.messages
    if len(messages) != 1 or messages[0].role != "user":
        raise InvalidRequest(
            "messages: with a conversation, send only the player's turn, as one user "
            "message; the platform adds the stored history."
        )
    return messages[0].content


def turn_request(
    *,
    conversation: Conversation,
    history: list[ConversationMessage],
    chat_request: ChatRequest,
) -> ChatRequest:
    """The request a turn sends: the conversation's system prompt (then the
    request's own), its last `history_limit` messages, and the player's turn.

    A window that would open with a reply starts at the turn after it, since
    some APIs want a conversation to open with the user.
    """
    messages = [Message(role=m.role, content=m.content) for m in history]
    if messages and messages[0].role == ConversationMessage.Role.ASSISTANT:
        messages.pop(0)
    parts = [part for part in (conversation.system_prompt, chat_request.system) if part]
    max_tokens = services.conversation_max_tokens(
        conversation=conversation, requested=chat_request.max_tokens
    )
    return check_bounds(
        replace(
            chat_request,
            model=chat_request.model or conversation.model,
            system="\n\n".join(parts) or None,
            messages=[*messages, *chat_request.messages],
            max_tokens=max_tokens,
        )
    )


class Turn:
    """One admitted turn: its run, its place in the queue, and its room.

    Renders like a `ChatRun` (`events()`, `result`), so the HTTP renderings take
    it as they are; `store` is their `on_result`. The turn holds the lock until
    the reply is stored, or until the run fails or is cut off.
    """

    def __init__(
        self,
        *,
        conversation: Conversation,
        principal: Principal,
        content: str,
        run: ChatRun,
        lock: TurnLock,
        sender: str,
    ) -> None:
        self.conversation = conversation
        self.principal = principal
        self.content = content
        self.run = run
        self.lock = lock
        self.sender = sender
        self.stored = False
        self._told_end = False
        self._pending: list[str] = []
        self._flushed_at = 0.0
        self._iterating = False

    @property
    def result(self) -> ChatResult:
        return self.run.result

    def tags(self) -> dict[str, str]:
        return {
            "conversation": str(self.conversation.pk),
            "turn": self.run.id,
            "author": self.principal.user.username,
        }

    def action_message(self) -> dict[str, Any]:
        return {"type": "room_action", **self.tags(), "content": self.content}

    async def _tell(self, message: dict[str, Any]) -> None:
        await room_send(self.conversation.pk, message, sender=self.sender)

    async def _relay(self, text: str) -> None:
        self._pending.append(text)
        if time.monotonic() - self._flushed_at >= ROOM_FLUSH_S:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            content, self._pending = "".join(self._pending), []
            await self._tell({"type": "stream_chunk", **self.tags(), "content": content})
        self._flushed_at = time.monotonic()

    def settle_unless_consumed(self, after: float = STREAM_START_GRACE_S) -> None:
        """Give up on the turn if nobody starts reading its events in time (the
        caller left before the stream began): a stream no one reads must not hold
        the room."""

        def check() -> None:
            if not self._iterating:
                task = asyncio.ensure_future(self._abandon())
                _abandoning.add(task)
                task.add_done_callback(_abandoning.discard)

        asyncio.get_running_loop().call_later(after, check)

    async def _abandon(self) -> None:
        try:
            await self.run.aclose()
        finally:
            await self.lock.release()

    async def events(self) -> AsyncIterator[Event]:
        self._iterating = True
        upstream = self.run.events()
        finished = False
        try:
            async for event in upstream:
                self.lock.progress_at = time.monotonic()
                if isinstance(event, TextDelta) and event.text:
                    await self._relay(event.text)
                yield event
            finished = True
        except ApiError as error:
            self._told_end = True
            await self._tell({"type": "error", **self.tags(), "stored": False, **error.to_dict()})
            raise
        finally:
            await upstream.aclose()
            if not finished:
                if not self._told_end:
                    self._told_end = True
                    await self._tell(
                        {
                            "type": "stream_end",
                            **self.tags(),
                            "usage": self.result.usage_dict(),
                            "finish_reason": "cancelled",
                            "stored": False,
                        }
                    )
                await self.lock.release()

    async def store(self, result: ChatResult) -> None:
        """Keep the player's turn and the reply (a successful answer only), then
        tell the room and let the next turn go."""
        try:
            await sync_to_async(services.conversation_add_turns)(
                conversation=self.conversation,
                user_content=self.content,
                author=self.principal.user,
                reply_content=result.content,
                tokens=result.usage.total_tokens,
            )
            self.stored = True
            await self._flush()
            self._told_end = True
            await self._tell(
                {
                    "type": "stream_end",
                    **self.tags(),
                    "usage": result.usage_dict(),
                    "finish_reason": result.stop_reason,
                    "stored": True,
                }
            )
        finally:
            await self.lock.release()


def _cache_token_game(principal: Principal, conversation: Conversation) -> None:
    # The gateway reads `principal.token.game` from async code; the game is at
    # hand (checked to be the token's own), so it need not be queried again.
    token = principal.token
    if token is not None and token.game_id is not None and token.game_id == conversation.game_id:
        token.game = conversation.game


async def turn_begin(
    *,
    principal: Principal,
    conversation: Conversation,
    chat_request: ChatRequest,
    sender: str = "",
) -> Turn:
    """Wait for this conversation's turn, then admit the request through the gateway
    and tell the room the player's action. Raises the `ApiError` that refuses it."""
    content = player_turn(chat_request)
    lock = TurnLock(conversation.pk)
    await lock.acquire()
    try:
        # Read again under the lock: the turns before this one changed the history
        # and the tokens used.
        conversation = await conversation_for(principal, conversation.pk)
        history = await selectors.aconversation_history(
            conversation=conversation, limit=conversation.history_limit
        )
        request = turn_request(
            conversation=conversation, history=history, chat_request=chat_request
        )
        _cache_token_game(principal, conversation)
        run = await chat_start(principal=principal, request=request, game=conversation.game)
        # The reply says so when the cap lowered what the player asked for.
        run.result.requested_max_tokens = max(
            run.result.requested_max_tokens, chat_request.max_tokens
        )
    except BaseException:
        await lock.release()
        raise
    turn = Turn(
        conversation=conversation,
        principal=principal,
        content=content,
        run=run,
        lock=lock,
        sender=sender,
    )
    await turn._tell(turn.action_message())
    return turn


async def conversation_stream(
    *, consumer: InferenceConsumer, request_id: str, body: ChatIn, chat_request: ChatRequest
) -> None:
    """An `inference` message with `conversation`: the turn, streamed to the player
    and to the room. The consumer reports an `ApiError` raised here, and ends a
    cancelled turn (never stored) with `stream_end`, finish reason `cancelled`."""
    assert consumer.principal is not None
    conversation = await conversation_for(consumer.principal, body.conversation)
    turn = await turn_begin(
        principal=consumer.principal,
        conversation=conversation,
        chat_request=chat_request,
        sender=consumer.channel_name,
    )
    await consumer.send_json({**turn.action_message(), "id": request_id})
    try:
        async for event in turn.events():
            if isinstance(event, TextDelta) and event.text:
                await consumer.send_json(
                    {"type": "stream_chunk", "id": request_id, **turn.tags(), "content": event.text}
                )
    except asyncio.CancelledError:
        # The player's own copy says what the room is told: which turn, what was
        # counted, and that nothing was stored.
        await consumer.send_cancelled(request_id, turn.run, **turn.tags(), stored=False)
        raise
    await turn.store(turn.result)
    await consumer.send_json(
        {**stream_end_message(turn.result), **turn.tags(), "id": request_id, "stored": True}
    )
    await consumer.send_token_usage()
