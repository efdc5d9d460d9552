"""The gateway: one chat request's whole life, whatever API it came in through.

`chat_start` does everything that can refuse a request before a byte goes out
(limits, routing, the quota reservation, and the upstream's first event, so an
upstream that fails at once still gets a proper HTTP status). The `ChatRun` it
returns streams the rest; when the stream ends — finished, failed, or cut off by
the caller — the run settles the reservation and writes the one usage record.
JSON, SSE, WebSocket and the compatible endpoints all go through here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from asgiref.sync import AsyncToSync, sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.db import connections

from inference.backends.base import (
    Backend,
    ChatRequest,
    Event,
    Stop,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from inference.db_threads import DatabaseThreads
from inference.errors import (
    ApiError,
    Forbidden,
    InferenceTimeout,
    UpstreamError,
    UpstreamFailure,
)
from inference.routing import resolve_model
from usage import services as usage_services
from usage.models import UsageRecord

if TYPE_CHECKING:
    from accounts.auth import Principal
    from games.models import Game

logger = logging.getLogger(__name__)

# Settlement must outlive a cancelled request task; these keep the tasks alive.
_settling: set[asyncio.Task] = set()
# How long a streamed answer may wait for its first read before it is given up.
STREAM_START_GRACE_S = 30.0


# --- The request path's database work ----------------------------------------------
#
# Under ASGI, Django runs a request's thread-sensitive code (the async ORM) on a
# thread made for that request, with a database connection made for it and
# closed when it ends. For SQLite, which has no connection pool, that is a file
# open, three PRAGMAs and a schema read per request, plus a thread started and
# joined, and with many requests in flight many threads race for SQLite's one
# write lock and sleep in its busy handler. So on SQLite the gateway's few
# queries (token lookup, reserve, settle) run on one long-lived thread of their
# own with one connection that stays open: writes are serialized by SQLite
# anyway. On PostgreSQL they run on a pool of such threads, each call with a
# connection from psycopg's pool that it hands back at its end: the calls work
# in parallel and owe nothing to the request, so a settlement that outlives its
# request (the caller left) needs no thread of the request's and leaves no
# connection behind. The threads are `DatabaseThreads`, cheaper for the loop to
# hand a call to than an executor (see there).

_sqlite_thread = DatabaseThreads(1, "gateway-db")
_pool_threads = DatabaseThreads(min(32, (os.cpu_count() or 1) + 4), "gateway-db-pool")


def _db_call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    try:
        return fn(*args, **kwargs)
    finally:
        # This thread outlives requests, so Django's end-of-request clean-up
        # never reaches its connection: drop it here if a query broke it.
        for conn in connections.all(initialized_only=True):
            if conn.errors_occurred and not conn.in_atomic_block:
                conn.close_if_unusable_or_obsolete()


def uses_sqlite() -> bool:
    """Whether the database is SQLite: then the gateway's queries share one
    long-lived connection on one thread (see above)."""
    return settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")


def _pooled_call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    try:
        return fn(*args, **kwargs)
    finally:
        # Back to psycopg's pool: the next call may run on another thread.
        for conn in connections.all(initialized_only=True):
            conn.close()


async def run_db(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)`, sync ORM code, from async code (see above)."""
    if getattr(AsyncToSync.executors, "current", None) is not None:
        # Under async_to_sync, whose calling thread must run it.
        return await sync_to_async(fn)(*args, **kwargs)
    if uses_sqlite():
        return await _sqlite_thread.call(_db_call, fn, args, kwargs)
    return await _pool_threads.call(_pooled_call, fn, args, kwargs)


def close_gateway_connections() -> None:
    """Close the SQLite connection of the gateway's thread (tests, before the
    test database goes; pooled calls hand theirs back as they end)."""
    if _sqlite_thread.started:
        _sqlite_thread.call_sync(connections.close_all)


def _rate_limit_in_process() -> bool:
    """Whether rate-limit counters live in this process (the local-memory cache).

    Then counting is a dictionary update under a lock, far cheaper than the
    thread hop that a network cache (Redis) needs to keep the loop free.
    """
    return isinstance(caches[settings.RATELIMIT_USE_CACHE], LocMemCache)


@dataclass(slots=True)
class ChatResult:
    id: str
    model: str
    backend: str
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal = Decimal(0)
    max_tokens: int = 0
    requested_max_tokens: int = 0
    outcome: str = UsageRecord.Outcome.OK
    error: ApiError | None = None
    quota: dict[str, Any] = field(default_factory=dict)

    @property
    def max_tokens_lowered(self) -> bool:
        return self.max_tokens < self.requested_max_tokens

    def usage_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.usage.prompt_tokens
            + self.usage.cache_write_tokens
            + self.usage.cache_read_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "total_tokens": self.usage.total_tokens,
            "cost_usd": float(self.cost_usd),
            "estimated": self.usage.estimated,
        }


def _game_for(principal: Principal, game: Game | None) -> Game | None:
    scoped = principal.token.game if principal.token is not None else None
    if scoped is not None:
        if game is not None and game.pk != scoped.pk:
            raise Forbidden("This token is limited to another game.")
        return scoped
    return game


def _apply_game_rules(request: ChatRequest, game: Game | None) -> ChatRequest:
    if game is None:
        return request
    model = request.model or game.default_model
    if game.allowed_models and model and model not in game.allowed_models:
        raise Forbidden(
            f"The game {game.slug!r} may not use the model {model!r}.",
            details={"allowed_models": list(game.allowed_models)},
        )
    system = request.system
    if game.system_prompt:
        # The game's own system prompt comes after the platform-held one and
        # cannot replace it.
        system = game.system_prompt + ("\n\n" + system if system else "")
    return replace(request, model=model, system=system)


async def chat_start(
    *, principal: Principal, request: ChatRequest, game: Game | None = None
) -> ChatRun:
    """Admit a chat request, or raise the `ApiError` that refuses it.

    Keeps the invariant that a request which reaches a backend holds a quota
    reservation until its usage is settled.
    """
    user = principal.user
    game = _game_for(principal, game)
    request = _apply_game_rules(request, game)
    if _rate_limit_in_process():
        usage_services.rate_limit_hit(user=user)
    else:
        await usage_services.arate_limit_hit(user=user)
    route = await resolve_model(request.model or None)
    request = replace(request, model=route.model)
    requested = request.max_tokens
    reserving = asyncio.ensure_future(
        run_db(
            usage_services.quota_reserve,
            user=user,
            game=game,
            prompt_estimate=usage_services.estimate_prompt_tokens(request),
            max_tokens=requested,
        )
    )
    try:
        reservation = await asyncio.shield(reserving)
    except asyncio.CancelledError:
        # The caller left while the reservation was being written: free it
        # once it exists rather than letting it hold tokens until it expires.
        reserving.add_done_callback(_release_abandoned)
        raise
    request = replace(request, max_tokens=reservation.max_tokens)
    run = ChatRun(
        principal=principal,
        request=request,
        backend=route.backend,
        game=game,
        reservation=reservation,
        requested_max_tokens=requested,
    )
    await run.prime()
    return run


async def chat_complete(
    *, principal: Principal, request: ChatRequest, game: Game | None = None
) -> ChatResult:
    """The whole answer at once (the stream, collected)."""
    run = await chat_start(principal=principal, request=request, game=game)
    async for _ in run.events():
        pass
    assert run.result is not None
    return run.result


class ChatRun:
    """One admitted request: its upstream stream, its reservation, its result."""

    def __init__(
        self,
        *,
        principal: Principal,
        request: ChatRequest,
        backend: Backend,
        game: Game | None,
        reservation: usage_services.Reservation,
        requested_max_tokens: int,
    ) -> None:
        self.id = f"chat_{uuid.uuid4().hex[:24]}"
        self.principal = principal
        self.request = request
        self.backend = backend
        self.game = game
        self.reservation = reservation
        self.result = ChatResult(
            id=self.id,
            model=request.model,
            backend=backend.name,
            max_tokens=request.max_tokens,
            requested_max_tokens=requested_max_tokens,
        )
        self._started = time.monotonic()
        self._first_at: float | None = None
        self._upstream: AsyncIterator[Event] | None = None
        self._first: Event | None = None
        self._text: list[str] = []
        self._usage: Usage | None = None
        self._settled = False
        self._reached_backend = False
        self._iterating = False

    # --- upstream with retries ------------------------------------------------------

    async def _next(self, upstream: AsyncIterator[Event]) -> Event:
        try:
            async with asyncio.timeout(settings.INFERENCE_TIMEOUT_S):
                return await anext(upstream)
        except TimeoutError:
            raise InferenceTimeout(
                f"The model server sent nothing for {settings.INFERENCE_TIMEOUT_S:g} s."
            ) from None

    def _backoff(self, attempt: int, error: UpstreamFailure) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if attempt >= settings.INFERENCE_MAX_RETRIES:
            return None
        if error.retry_after is not None:
            if error.retry_after > settings.INFERENCE_RETRY_MAX_S:
                return None  # the upstream asks for longer than a caller should wait
            return error.retry_after
        base = settings.INFERENCE_RETRY_BASE_S * (2**attempt)
        return min(base, settings.INFERENCE_RETRY_MAX_S) * random.uniform(0.75, 1.0)

    async def prime(self) -> None:
        """Open the upstream stream and wait for its first event.

        Upstream faults here are retried with backoff: nothing has gone to the
        caller yet. If every attempt fails, the error is raised (and settled).
        """
        attempt = 0
        while True:
            upstream = self.backend.stream(self.request)
            self._reached_backend = True
            self._usage = None
            try:
                self._first = await self._next(upstream)
                # Opening usage figures are no answer yet: keep reading (and
                # retrying on a fault) until the first text or tool call.
                while isinstance(self._first, Usage):
                    self._usage = self._first
                    self._first = await self._next(upstream)
            except StopAsyncIteration:
                self._first = None
            except UpstreamFailure as error:
                await _close_quietly(upstream)
                delay = self._backoff(attempt, error) if error.retryable else None
                if delay is None:
                    await self._settle(error=error)
                    raise
                logger.info("retrying %s after %s (%.2fs)", self.backend.name, error, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            except ApiError as error:
                await _close_quietly(upstream)
                await self._settle(error=error)
                raise
            except asyncio.CancelledError:
                await _close_quietly(upstream)
                await self._settle(cancelled=True)
                raise
            except Exception as exc:
                await _close_quietly(upstream)
                error = UpstreamError(f"The model server's answer could not be read: {exc}")
                await self._settle(error=error)
                raise error from exc
            self._upstream = upstream
            if isinstance(self._first, TextDelta | ToolCallEvent):
                self._first_at = time.monotonic()
            return

    # --- the stream the renderers consume ---------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """The answer's events. Raises `ApiError` if the upstream fails mid-stream;
        settles usage however it ends, including when the consumer stops early."""
        error: ApiError | None = None
        cancelled = False
        self._iterating = True
        try:
            if self._first is not None:
                event, self._first = self._first, None
                self._track(event)
                yield event
            if self._upstream is not None:
                while True:
                    try:
                        event = await self._next(self._upstream)
                    except StopAsyncIteration:
                        break
                    self._track(event)
                    yield event
        except ApiError as exc:
            error = exc
            raise
        except (GeneratorExit, asyncio.CancelledError):
            cancelled = True
            raise
        except Exception as exc:
            error = UpstreamError(f"The model server's answer could not be read: {exc}")
            raise error from exc
        finally:
            if self._upstream is not None:
                await _close_quietly(self._upstream)
            await self._settle(error=error, cancelled=cancelled)

    def _track(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            if self._first_at is None:
                self._first_at = time.monotonic()
            self._text.append(event.text)
        elif isinstance(event, ToolCallEvent):
            if self._first_at is None:
                self._first_at = time.monotonic()
            self.result.tool_calls.append(event.call)
        elif isinstance(event, Usage):
            self._usage = event
        elif isinstance(event, Stop):
            self.result.stop_reason = event.reason
            self.result.stop_sequence = event.stop_sequence

    def settle_unless_consumed(self, after: float = STREAM_START_GRACE_S) -> None:
        """Settle the run if nobody starts reading its events in time.

        A caller that leaves between the response head and the first body read
        never starts the event generator, so its `finally` never runs; this
        makes sure the upstream is closed and the usage recorded all the same.
        """

        def check() -> None:
            if not self._iterating and not self._settled:
                task = asyncio.ensure_future(self.aclose())
                _settling.add(task)
                task.add_done_callback(_settling.discard)

        asyncio.get_running_loop().call_later(after, check)

    async def aclose(self) -> None:
        """Give up on a run whose events were never consumed (the caller left)."""
        if self._upstream is not None:
            await _close_quietly(self._upstream)
        await self._settle(cancelled=True)

    # --- settlement -----------------------------------------------------------------------

    def _final_usage(self, *, cancelled: bool) -> Usage:
        """The upstream's own counts when they arrived; else an estimate, marked so."""
        usage = self._usage
        if usage is not None and self.result.stop_reason is not None:
            return usage
        if usage is not None:
            # Cut off after the opening figures: the prompt count is the
            # upstream's, the completion so far is estimated from what arrived.
            completion = max(usage.completion_tokens, _estimate_tokens(self._text))
            return replace(usage, completion_tokens=completion, estimated=True)
        if not self._reached_backend or (not self._text and not cancelled):
            # Refused before generating anything: upstreams bill nothing for that.
            return Usage()
        return Usage(
            prompt_tokens=_estimate_prompt(self.request),
            completion_tokens=_estimate_tokens(self._text),
            estimated=True,
        )

    async def _settle(self, *, error: ApiError | None = None, cancelled: bool = False) -> None:
        if self._settled:
            return
        self._settled = True
        result = self.result
        result.content = "".join(self._text)
        if error is not None:
            result.outcome = UsageRecord.Outcome.ERROR
            result.error = error
        elif cancelled:
            result.outcome = UsageRecord.Outcome.CANCELLED
        result.usage = self._final_usage(cancelled=cancelled)
        now = time.monotonic()
        latency_ms = int((now - self._started) * 1000)
        ttft_ms = int((self._first_at - self._started) * 1000) if self._first_at else None

        async def settle() -> None:
            record = await run_db(
                usage_services.quota_settle,
                reservation=self.reservation,
                usage=result.usage,
                outcome=result.outcome,
                error_code=error.code if error is not None else "",
                backend=self.backend.name,
                model=self.request.model,
                token=self.principal.token,
                latency_ms=latency_ms,
                ttft_ms=ttft_ms,
            )
            result.cost_usd = record.cost_usd
            quota = getattr(record, "quota_after", None)
            if quota is not None:
                result.quota = quota

        task = asyncio.ensure_future(settle())
        _settling.add(task)
        task.add_done_callback(_settling.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # Cancelled again while settling: the task finishes on its own.
            raise
        except Exception:
            logger.exception("settling usage of %s failed", self.id)


def _release_abandoned(reserving: asyncio.Future) -> None:
    if reserving.cancelled() or reserving.exception() is not None:
        return
    task = asyncio.ensure_future(
        run_db(usage_services.quota_release, reservation=reserving.result())
    )
    _settling.add(task)
    task.add_done_callback(_settling.discard)


def _estimate_tokens(texts: list[str]) -> int:
    """Tokens in text received without upstream counts: about four characters
    per token, and never fewer than the pieces streamed (each held >= 1 token)."""
    chars = sum(len(t) for t in texts)
    return max(len(texts), (chars + 3) // 4)


def _estimate_prompt(request: ChatRequest) -> int:
    chars = len(request.system or "") + sum(len(m.content) for m in request.messages)
    return (chars + 3) // 4 + 4 * len(request.messages)


async def _close_quietly(stream: AsyncIterator[Event]) -> None:
    close = getattr(stream, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:  # the upstream is going away; nothing more to learn from it
        logger.debug("closing an upstream stream failed", exc_info=True)


async def wait_for_settlements() -> None:
    """Tests and shutdown: let in-flight settlements finish."""
    while _settling:
        await asyncio.gather(*list(_settling), return_exceptions=True)
