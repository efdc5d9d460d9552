"""Usage, quotas and cost: the only place these rules live.

CONTRACT (implemented by the usage work; the gateway in inference/services.py
calls exactly these):

- `estimate_prompt_tokens(request: ChatRequest) -> int`: a conservative upper
  bound of the prompt's tokens (UTF-8 bytes of all text, plus overheads per
  message and for tools), so settled usage cannot pass a limit.
- `quota_reserve(*, user, game=None, prompt_estimate, max_tokens) -> Reservation`
  (sync; `aquota_reserve` is the async twin): atomically checks the user's total
  and daily limits and the game's per-player daily limit against counted usage
  plus live reservations, lowers `max_tokens` to what is left, raises
  `inference.errors.QuotaExceeded` (naming the limit and when it resets) when
  fewer than QUOTA_MIN_COMPLETION_TOKENS would be left, and records a
  reservation that expires after QUOTA_RESERVATION_TTL_S.
- `quota_settle(*, reservation, usage: Usage, outcome, error_code="", backend,
  model, token=None, latency_ms, ttft_ms) -> UsageRecord` (+ `aquota_settle`):
  frees the reservation, adds the true counts to the counters and writes the
  one usage record, with its cost, in one transaction.
- `quota_release(*, reservation) -> None` (+ `aquota_release`): frees a
  reservation for a request that never reached a backend.
- `rate_limit_hit(*, user) -> None` (+ async twin `arate_limit_hit`): counts one
  inference request on the shared cache; raises `RateLimitExceeded` with
  `retry_after` when over the user's per-minute rate.
- `cost_usd(*, model, usage) -> Decimal` from the price table.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import EllipsisType
from typing import TYPE_CHECKING
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_ratelimit.core import get_usage

from inference.backends.base import ChatRequest, Usage
from inference.errors import QuotaExceeded, RateLimitExceeded
from usage.clock import day_resets_at, usage_day
from usage.models import GameQuota, QuotaReservation, UsageRecord, UserQuota
from usage.selectors import model_price_get

if TYPE_CHECKING:
    from accounts.models import ApiToken, User
    from games.models import Game

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reservation:
    id: UUID
    user_id: int
    game_id: int | None
    day: date
    tokens: int
    prompt_estimate: int
    max_tokens: int
    # The max_tokens asked for, when the limits made it smaller.
    requested_max_tokens: int

    @property
    def lowered(self) -> bool:
        return self.max_tokens < self.requested_max_tokens


# --- Prompt estimate -----------------------------------------------------------------

# Role markers and separators the upstream wraps around each message, and the
# fixed framing of a request; generous next to what any tokenizer adds.
TOKENS_PER_MESSAGE = 8
TOKENS_PER_REQUEST = 16
# Upstreams add their own system prompt describing the tools (Anthropic's is a
# few hundred tokens); counted once when any tool is given.
TOKENS_FOR_TOOL_USE = 300


def _utf8_len(text: str | None) -> int:
    return len(text.encode("utf-8")) if text else 0


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """A conservative upper bound of the prompt's tokens, without a tokenizer.

    Why bytes bound tokens: the models served here use byte-level BPE or
    SentencePiece with byte fallback. Both start from the UTF-8 bytes of the
    text and only ever merge them, so every token covers at least one byte and a
    text of N bytes is at most N tokens. Real counts are 3-4 times lower for
    English; over-reserving only lowers `max_tokens` near a limit, while an
    under-estimate could let settled usage pass it.
    """
    size = _utf8_len(request.system)
    for message in request.messages:
        size += _utf8_len(message.content)
        size += _utf8_len(message.tool_call_id) + _utf8_len(message.tool_name)
        for call in message.tool_calls:
            size += _utf8_len(call.id) + _utf8_len(call.name) + _utf8_len(call.arguments_json)
    if request.tools:
        schemas = [
            {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
            for tool in request.tools
        ]
        size += _utf8_len(json.dumps(schemas, separators=(",", ":"), ensure_ascii=False))
        size += TOKENS_FOR_TOOL_USE
    for stop in request.stop:
        size += _utf8_len(stop)
    return size + TOKENS_PER_MESSAGE * len(request.messages) + TOKENS_PER_REQUEST


# --- The quota ledger ---------------------------------------------------------------


def _locked_user_quota(user_id: int) -> UserQuota:
    """The user's quota row, locked until the transaction ends.

    On PostgreSQL the row lock serializes every reservation and settlement of
    one user across all workers. SQLite ignores `select_for_update`, but its
    transactions start with BEGIN IMMEDIATE (settings), which holds the
    database's write lock from the first statement, so the same holds there.
    """
    # The user comes along for the limits; `of` keeps the lock on the quota row.
    locked = UserQuota.objects.select_related("user").select_for_update(of=("self",))
    quota = locked.filter(pk=user_id).first()
    if quota is None:
        # The first reservation ever: two may race to create the row, and
        # get_or_create's savepoint lets the loser read the winner's.
        UserQuota.objects.get_or_create(user_id=user_id)
        quota = locked.get(pk=user_id)
    return quota


def _quota_after(quota: UserQuota) -> dict:
    """The user's figures once a request is settled (for the gateway's headers and
    the stream's end): limits, counted usage, live reservations, what is left."""
    user = quota.user
    today = quota.day
    held = QuotaReservation.objects.filter(user_id=quota.pk, expires_at__gt=timezone.now())
    held = held.aggregate(
        total=Coalesce(Sum("tokens"), 0), today=Coalesce(Sum("tokens", filter=Q(day=today)), 0)
    )
    limits = {"total": user.effective_token_limit, "daily": user.effective_daily_token_limit}
    used = {"total": quota.total_used, "today": quota.day_used}

    def left(limit: int | None, window: str) -> int | None:
        return None if limit is None else max(0, limit - used[window] - held[window])

    return {
        "limits": limits,
        "used": used,
        "reserved": held,
        "remaining": {
            "total": left(limits["total"], "total"),
            "today": left(limits["daily"], "today"),
        },
        "resets_at": day_resets_at(today).isoformat() if today else None,
    }


def _refuse(
    *, kind: str, limit: int, left: int, needed: int, day: date, now: datetime
) -> QuotaExceeded:
    left = max(0, left)
    if kind == "total":
        message = (
            f"Your total token limit of {limit:,} tokens is used up ({left:,} left, this "
            f"request needs at least {needed:,}). Ask an administrator to raise it."
        )
        return QuotaExceeded(
            message, details={"limit": kind, "limit_tokens": limit, "resets_at": None}
        )
    resets_at = day_resets_at(day)
    whose = "Your daily token limit" if kind == "daily" else "This game's daily limit per player"
    message = (
        f"{whose} of {limit:,} tokens is used up ({left:,} left, this request needs at "
        f"least {needed:,}). It resets at {resets_at.isoformat()}."
    )
    return QuotaExceeded(
        message,
        retry_after=max(1.0, (resets_at - now).total_seconds()),
        details={"limit": kind, "limit_tokens": limit, "resets_at": resets_at.isoformat()},
    )


def quota_reserve(
    *,
    user: User,
    game: Game | None = None,
    prompt_estimate: int,
    max_tokens: int,
    now: datetime | None = None,
) -> Reservation:
    """Hold the prompt estimate plus a completion budget before a backend is called.

    Keeps the hard caps under any concurrency: counted usage plus every live
    reservation never exceeds the user's total limit, the user's daily limit,
    or the game's daily limit per player, because the check and the new
    reservation happen under one lock on the user's quota row. `max_tokens` is
    lowered to what is left; below QUOTA_MIN_COMPLETION_TOKENS the request is
    refused with `QuotaExceeded` naming the limit and when it resets.
    """
    now = now or timezone.now()
    today = usage_day(now)
    requested = max_tokens
    floor = settings.QUOTA_MIN_COMPLETION_TOKENS
    game_limit = game.daily_token_limit_per_player if game is not None else None

    with transaction.atomic():
        quota = _locked_user_quota(user.pk)
        if quota.day is None or quota.day < today:
            quota.day, quota.day_used = today, 0
            quota.save(update_fields=["day", "day_used", "updated_at"])
        elif quota.day > today:
            # Another worker's clock has already passed midnight: count on its
            # day, so the two never hold the same day's tokens apart.
            today = quota.day

        # A crashed worker's reservations would hold capacity forever otherwise.
        QuotaReservation.objects.filter(user_id=user.pk, expires_at__lte=now).delete()
        held = QuotaReservation.objects.filter(user_id=user.pk).aggregate(
            total=Coalesce(Sum("tokens"), 0),
            today=Coalesce(Sum("tokens", filter=Q(day=today)), 0),
            game=Coalesce(Sum("tokens", filter=Q(day=today, game_id=getattr(game, "pk", 0))), 0),
        )

        game_used = 0
        if game is not None:
            game_quota, _ = GameQuota.objects.get_or_create(
                user_id=user.pk, game_id=game.pk, defaults={"day": today}
            )
            if game_quota.day < today:
                game_quota.day, game_quota.day_used = today, 0
                game_quota.save(update_fields=["day", "day_used"])
            game_used = game_quota.day_used

        # What is left under each limit that applies: (left, kind, limit).
        left_under: list[tuple[int, str, int]] = []
        if (limit := user.effective_token_limit) is not None:
            left_under.append((limit - quota.total_used - held["total"], "total", limit))
        if (limit := user.effective_daily_token_limit) is not None:
            left_under.append((limit - quota.day_used - held["today"], "daily", limit))
        if game_limit is not None:
            left_under.append((game_limit - game_used - held["game"], "game_daily", game_limit))

        if left_under:
            left, kind, limit = min(left_under)
            budget = left - prompt_estimate
            if budget < floor:
                raise _refuse(
                    kind=kind,
                    limit=limit,
                    left=left,
                    needed=prompt_estimate + floor,
                    day=today,
                    now=now,
                )
            max_tokens = min(requested, budget)

        row = QuotaReservation.objects.create(
            user_id=user.pk,
            game_id=getattr(game, "pk", None),
            tokens=prompt_estimate + max_tokens,
            day=today,
            expires_at=now + timedelta(seconds=settings.QUOTA_RESERVATION_TTL_S),
        )
    return Reservation(
        id=row.id,
        user_id=user.pk,
        game_id=row.game_id,
        day=today,
        tokens=row.tokens,
        prompt_estimate=prompt_estimate,
        max_tokens=max_tokens,
        requested_max_tokens=requested,
    )


def quota_settle(
    *,
    reservation: Reservation,
    usage: Usage,
    outcome: str,
    error_code: str = "",
    backend: str,
    model: str,
    token: ApiToken | None = None,
    latency_ms: int,
    ttft_ms: int | None = None,
) -> UsageRecord:
    """Turn a reservation into the true count and the request's one usage record.

    In one transaction: the counters grow by the upstream's count (the daily
    ones only while still on the reservation's day), the reservation is freed
    and the record written, so the counters always equal the sum of the records
    since the last reset and nobody ever sees the tokens counted twice or not
    at all. Settled usage stays within the limits because the count cannot
    exceed what was reserved (a conservative prompt estimate plus max_tokens).

    The record carries `quota_after`: the user's limits, used, reserved and
    remaining tokens just after this request (the `usage_summary` shape without
    cost), so the gateway can report them without another query.
    """
    total = usage.total_tokens
    if total > reservation.tokens:
        logger.warning(
            "usage of %s tokens passed the reservation of %s (user %s, model %s)",
            total,
            reservation.tokens,
            reservation.user_id,
            model,
        )
    # Priced before the transaction: the price table may need a query, and the
    # lock on the user's quota row should be held as briefly as possible.
    cost = cost_usd(model=model, usage=usage)

    with transaction.atomic():
        quota = _locked_user_quota(reservation.user_id)
        quota.total_used += total
        if quota.day == reservation.day:
            quota.day_used += total
        quota.save(update_fields=["total_used", "day_used", "updated_at"])
        if reservation.game_id is not None:
            GameQuota.objects.filter(
                user_id=reservation.user_id, game_id=reservation.game_id, day=reservation.day
            ).update(day_used=F("day_used") + total)
        QuotaReservation.objects.filter(pk=reservation.id).delete()
        record = UsageRecord.objects.create(
            user_id=reservation.user_id,
            token=token,
            game_id=reservation.game_id,
            backend=backend,
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            total_tokens=total,
            estimated=usage.estimated,
            cost_usd=cost,
            outcome=outcome,
            error_code=error_code,
            latency_ms=max(0, int(latency_ms)),
            ttft_ms=None if ttft_ms is None else max(0, int(ttft_ms)),
            day=reservation.day,
        )
        record.quota_after = _quota_after(quota)
    return record


def quota_release(*, reservation: Reservation) -> None:
    """Free a reservation whose request never reached a backend (nothing to count)."""
    QuotaReservation.objects.filter(pk=reservation.id).delete()


def release_expired_reservations(*, now: datetime | None = None) -> int:
    """Free every expired reservation (a dead worker's); returns how many.

    `quota_reserve` already frees the caller's own; this sweeps everyone's, for
    the admin and a periodic job, so the dashboard's "reserved" figures are true.
    """
    now = now or timezone.now()
    deleted, _ = QuotaReservation.objects.filter(expires_at__lte=now).delete()
    return deleted


# Async twins for the request path: one thread hop per call (the default
# thread-sensitive executor, where Django's ORM runs).


async def aquota_reserve(
    *,
    user: User,
    game: Game | None = None,
    prompt_estimate: int,
    max_tokens: int,
    now: datetime | None = None,
) -> Reservation:
    return await sync_to_async(quota_reserve)(
        user=user, game=game, prompt_estimate=prompt_estimate, max_tokens=max_tokens, now=now
    )


async def aquota_settle(
    *,
    reservation: Reservation,
    usage: Usage,
    outcome: str,
    error_code: str = "",
    backend: str,
    model: str,
    token: ApiToken | None = None,
    latency_ms: int,
    ttft_ms: int | None = None,
) -> UsageRecord:
    return await sync_to_async(quota_settle)(
        reservation=reservation,
        usage=usage,
        outcome=outcome,
        error_code=error_code,
        backend=backend,
        model=model,
        token=token,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
    )


async def aquota_release(*, reservation: Reservation) -> None:
    await sync_to_async(quota_release)(reservation=reservation)


# --- Counters a reset or an administrator changes ----------------------------------


def quota_reset(*, users: QuerySet[User] | None = None, window: str) -> int:
    """Zero the counted usage of `window` ("daily", "total" or "all") for `users`
    (everyone when None); returns how many users had a counter to zero.

    The usage records stay: history and cost are kept, only what the limits
    are checked against starts again. Live reservations are untouched, so the
    caps still hold for requests in flight.
    """
    if window not in ("daily", "total", "all"):
        raise ValueError(f"unknown window {window!r}")
    quotas = UserQuota.objects.all()
    games = GameQuota.objects.all()
    if users is not None:
        quotas = quotas.filter(user__in=users)
        games = games.filter(user__in=users)
    fields: dict[str, int] = {}
    if window in ("daily", "all"):
        fields["day_used"] = 0
    if window in ("total", "all"):
        fields["total_used"] = 0
    with transaction.atomic():
        count = quotas.update(**fields, updated_at=timezone.now())
        if "day_used" in fields:
            games.update(day_used=0)
    return count


def user_limits_set(
    *,
    user: User,
    daily: int | EllipsisType | None = ...,
    total: int | EllipsisType | None = ...,
    rate: int | EllipsisType | None = ...,
) -> User:
    """Set a user's limits (tokens per day, tokens in total, requests per minute).

    `None` clears a limit so the configured default applies; 0 lifts it (as for
    the defaults, see `User.effective_*`); `...` leaves it as it is. A lower
    limit applies from the next reservation on; requests in flight keep theirs.
    """
    changes = {"daily_token_limit": daily, "token_limit": total, "rate_limit_per_minute": rate}
    fields = [name for name, value in changes.items() if value is not ...]
    for name in fields:
        setattr(user, name, changes[name])
    if fields:
        user.save(update_fields=fields)
    return user


def usage_records_prune(*, before: date) -> int:
    """Delete usage records of days before `before`; returns how many.

    The counters are left alone: the limits keep what was counted, and only
    the history (dashboard, reports, cost) of those days goes.
    """
    deleted, _ = UsageRecord.objects.filter(day__lt=before).delete()
    return deleted


# --- Rate limits ---------------------------------------------------------------------

RATE_LIMIT_GROUP = "inference"


def rate_limit_hit(*, user: User) -> None:
    """Count one inference request against the user's per-minute rate.

    The counters live on the shared cache (Redis when configured), so the rate
    holds across every worker. Raises `RateLimitExceeded` with `retry_after`
    set to the seconds until the user's window starts again.
    """
    rate = user.effective_rate_limit_per_minute
    if rate is None:
        return
    user_key = str(user.pk)
    # No request object on this path (async views, the WebSocket consumer):
    # django-ratelimit only needs one for its built-in keys and method filter,
    # and a callable key with the default method ALL never touches it.
    usage = get_usage(
        None,
        group=RATE_LIMIT_GROUP,
        key=lambda group, request: user_key,
        rate=f"{rate}/m",
        increment=True,
    )
    if usage is None or not usage["should_limit"]:
        return
    retry_after = max(1, usage["time_left"])
    raise RateLimitExceeded(
        f"Too many requests: at most {rate} a minute. Try again in {retry_after} s.",
        retry_after=retry_after,
        details={"limit_per_minute": rate},
    )


async def arate_limit_hit(*, user: User) -> None:
    # No database here, so the hop needn't wait for the ORM's thread.
    await sync_to_async(rate_limit_hit, thread_sensitive=False)(user=user)


# --- Cost --------------------------------------------------------------------------

MTOK = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.00000001")  # UsageRecord.cost_usd's 8 places


def cost_usd(*, model: str, usage: Usage) -> Decimal:
    """What the tokens cost by the price table; 0 for a model without a price."""
    price = model_price_get(model=model)
    if price is None:
        return Decimal(0)
    amount = (
        usage.prompt_tokens * price.input_per_mtok
        + usage.completion_tokens * price.output_per_mtok
        + usage.cache_write_tokens * price.cache_write_per_mtok
        + usage.cache_read_tokens * price.cache_read_per_mtok
    ) / MTOK
    return amount.quantize(COST_QUANTUM)
