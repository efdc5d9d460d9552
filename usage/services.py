"""Usage, quotas and cost: the only place these rules live.

CONTRACT (the gateway in inference/services.py calls exactly these, from async
code through `inference.services.run_db`, which picks the thread and connection):

- `estimate_prompt_tokens(request: ChatRequest) -> int`: a conservative upper
  bound of the prompt's tokens (UTF-8 bytes of all text, plus overheads per
  message and for tools), so settled usage cannot pass a limit.
- `quota_reserve(*, user, game=None, prompt_estimate, max_tokens) -> Reservation`:
  atomically checks the user's total and daily limits and the game's per-player
  daily limit against counted usage plus live reservations, lowers `max_tokens`
  to what is left, raises `inference.errors.QuotaExceeded` (naming the limit and
  when it resets) when fewer than QUOTA_MIN_COMPLETION_TOKENS would be left, and
  records a reservation that expires after QUOTA_RESERVATION_TTL_S.
- `quota_settle(*, reservation, usage: Usage, outcome, error_code="", backend,
  model, token=None, latency_ms, ttft_ms) -> UsageRecord`: frees the reservation,
  adds the true counts to the counters and writes the one usage record, with its
  cost, in one transaction.
- `quota_release(*, reservation) -> None`: frees a reservation for a request that
  never reached a backend.
- `rate_limit_hit(*, user) -> None` (+ async twin `arate_limit_hit`): counts one
  inference request on the shared cache; raises `RateLimitExceeded` with
  `retry_after` when over the user's per-minute rate.
- `cost_usd(*, model, usage) -> Decimal` from the price table.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import EllipsisType
from typing import TYPE_CHECKING, Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from django.utils import timezone
from django_ratelimit.core import get_usage

from accounts.models import effective_limit
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
#
# Reserving and settling run on every request, so they are written as SQL on one
# cursor: the statements the ORM would send, in the same transactions under the
# same locks, without building and compiling a queryset for each (a reservation
# and its settlement cost ~3.2 ms of CPU through the ORM, 0.3 ms this way, commits
# included). The models stay the schema's source of truth: every table and column
# name comes from their `_meta`, and values are adapted by the fields and the
# database's operations as the ORM adapts them. The SQL is portable between SQLite
# and PostgreSQL (RETURNING, ON CONFLICT DO NOTHING); where they differ, the
# database's features decide.


def _column(model: type[models.Model], name: str) -> str:
    return model._meta.get_field(name).column


@dataclass(frozen=True, slots=True)
class _Statements:
    """The ledger's SQL for one database vendor, built once from the models."""

    lock_quota: str
    create_quota: str
    new_day: str
    delete_expired: str
    held_for_reserve: str
    game_quota: str
    create_game_quota: str
    game_new_day: str
    insert_reservation: str
    settle_quota: str
    read_quota: str
    settle_game: str
    delete_reservation: str
    insert_record: str
    record_fields: tuple[models.Field, ...]
    held_after: str
    # Whether UPDATE and INSERT can return columns (PostgreSQL, SQLite >= 3.35).
    returning: bool


_statements_by_vendor: dict[str, _Statements] = {}


def _statements(db: BaseDatabaseWrapper) -> _Statements:
    """The ledger's SQL for `db`'s vendor (built on first use: the models'
    `_meta` is complete only once the apps are loaded)."""
    sql = _statements_by_vendor.get(db.vendor)
    if sql is None:
        sql = _statements_by_vendor[db.vendor] = _build_statements(db)
    return sql


def _build_statements(db: BaseDatabaseWrapper) -> _Statements:
    from accounts.models import User

    features = db.features
    qn = db.ops.quote_name
    uq, gq = qn(UserQuota._meta.db_table), qn(GameQuota._meta.db_table)
    qr, ur = qn(QuotaReservation._meta.db_table), qn(UsageRecord._meta.db_table)
    users = qn(User._meta.db_table)

    def cols(model: type[models.Model], *names: str) -> list[str]:
        return [qn(_column(model, name)) for name in names]

    q_user, q_total, q_day, q_day_used, q_updated = cols(
        UserQuota, "user", "total_used", "day", "day_used", "updated_at"
    )
    g_user, g_game, g_day, g_day_used = cols(GameQuota, "user", "game", "day", "day_used")
    r_id, r_user, r_game, r_tokens, r_day, r_created, r_expires = cols(
        QuotaReservation, "id", "user", "game", "tokens", "day", "created_at", "expires_at"
    )
    u_id, u_total, u_daily = cols(User, "id", "token_limit", "daily_token_limit")
    # PostgreSQL locks the row; SQLite has no row locks, but the ledger's
    # transactions start with BEGIN IMMEDIATE (settings), which holds the
    # database's write lock from the first statement on.
    for_update = " FOR UPDATE" if features.has_select_for_update else ""
    # UPDATE … RETURNING: PostgreSQL, SQLite >= 3.35 (the same as for INSERT).
    returning = features.can_return_columns_from_insert
    record_fields = [
        field
        for field in UsageRecord._meta.concrete_fields
        if not (field.primary_key and isinstance(field, models.AutoField))
    ]
    insert_record = (
        f"INSERT INTO {ur} ({', '.join(qn(f.column) for f in record_fields)}) "
        f"VALUES ({', '.join(['%s'] * len(record_fields))})"
    )
    if returning:
        insert_record += f" RETURNING {qn(UsageRecord._meta.pk.column)}"
    quota_values = f"{q_total}, {q_day}, {q_day_used}"
    settle_quota = (
        f"UPDATE {uq} SET {q_total} = {q_total} + %s, "
        f"{q_day_used} = CASE WHEN {q_day} = %s THEN {q_day_used} + %s ELSE {q_day_used} END, "
        f"{q_updated} = %s WHERE {q_user} = %s"
    )
    if returning:
        settle_quota += f" RETURNING {quota_values}"
    return _Statements(
        lock_quota=f"SELECT {quota_values} FROM {uq} WHERE {q_user} = %s{for_update}",
        create_quota=(
            f"INSERT INTO {uq} ({q_user}, {q_total}, {q_day}, {q_day_used}, {q_updated}) "
            f"VALUES (%s, 0, NULL, 0, %s) ON CONFLICT ({q_user}) DO NOTHING"
        ),
        new_day=f"UPDATE {uq} SET {q_day} = %s, {q_day_used} = 0, {q_updated} = %s "
        f"WHERE {q_user} = %s",
        delete_expired=f"DELETE FROM {qr} WHERE {r_user} = %s AND {r_expires} <= %s",
        held_for_reserve=(
            f"SELECT COALESCE(SUM({r_tokens}), 0), "
            f"COALESCE(SUM(CASE WHEN {r_day} = %s THEN {r_tokens} ELSE 0 END), 0), "
            f"COALESCE(SUM(CASE WHEN {r_day} = %s AND {r_game} = %s "
            f"THEN {r_tokens} ELSE 0 END), 0) "
            f"FROM {qr} WHERE {r_user} = %s"
        ),
        game_quota=f"SELECT {g_day}, {g_day_used} FROM {gq} WHERE {g_user} = %s AND {g_game} = %s",
        create_game_quota=(
            f"INSERT INTO {gq} ({g_user}, {g_game}, {g_day}, {g_day_used}) "
            f"VALUES (%s, %s, %s, 0) ON CONFLICT ({g_user}, {g_game}) DO NOTHING"
        ),
        game_new_day=f"UPDATE {gq} SET {g_day} = %s, {g_day_used} = 0 "
        f"WHERE {g_user} = %s AND {g_game} = %s",
        insert_reservation=(
            f"INSERT INTO {qr} ({r_id}, {r_user}, {r_game}, {r_tokens}, {r_day}, {r_created}, "
            f"{r_expires}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        ),
        settle_quota=settle_quota,
        read_quota=f"SELECT {quota_values} FROM {uq} WHERE {q_user} = %s",
        settle_game=(
            f"UPDATE {gq} SET {g_day_used} = {g_day_used} + %s "
            f"WHERE {g_user} = %s AND {g_game} = %s AND {g_day} = %s"
        ),
        delete_reservation=f"DELETE FROM {qr} WHERE {r_id} = %s",
        insert_record=insert_record,
        record_fields=tuple(record_fields),
        # The user's limits and live reservations, for the figures after a request.
        held_after=(
            f"SELECT u.{u_total}, u.{u_daily}, COALESCE(SUM(r.{r_tokens}), 0), "
            f"COALESCE(SUM(CASE WHEN r.{r_day} = %s THEN r.{r_tokens} ELSE 0 END), 0) "
            f"FROM {users} u LEFT JOIN {qr} r ON r.{r_user} = u.{u_id} AND r.{r_expires} > %s "
            f"WHERE u.{u_id} = %s GROUP BY u.{u_id}"
        ),
        returning=returning,
    )


def _as_date(value: date | str | None) -> date | None:
    """A date column's value: SQLite hands back text where it cannot tell the type
    (RETURNING), PostgreSQL a date."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _lock_user_quota(
    db: BaseDatabaseWrapper, cursor: Any, sql: _Statements, user_id: int, now: datetime
) -> tuple:
    """(total_used, day, day_used) of the user's quota row, locked until the
    transaction ends; the row is created on the first reservation ever.

    On PostgreSQL the row lock serializes every reservation and settlement of
    one user across all workers; on SQLite the transaction's write lock does.
    """
    cursor.execute(sql.lock_quota, [user_id])
    row = cursor.fetchone()
    if row is None:
        # Two first reservations may race to create the row: the loser's insert
        # does nothing (on PostgreSQL after waiting for the winner's commit),
        # and both then lock the one row.
        cursor.execute(sql.create_quota, [user_id, db.ops.adapt_datetimefield_value(now)])
        cursor.execute(sql.lock_quota, [user_id])
        row = cursor.fetchone()
    total_used, day, day_used = row
    return total_used, _as_date(day), day_used


def _quota_after(
    db: BaseDatabaseWrapper,
    cursor: Any,
    sql: _Statements,
    *,
    user_id: int,
    total_used: int,
    day: date | None,
    day_used: int,
    now: datetime,
) -> dict:
    """The user's figures once a request is settled (for the gateway's headers and
    the stream's end): limits, counted usage, live reservations, what is left."""
    ops = db.ops
    params = [ops.adapt_datefield_value(day), ops.adapt_datetimefield_value(now), user_id]
    cursor.execute(sql.held_after, params)
    token_limit, daily_limit, held_total, held_today = cursor.fetchone()
    limits = {
        "total": effective_limit(token_limit, settings.DEFAULT_TOKEN_LIMIT),
        "daily": effective_limit(daily_limit, settings.DEFAULT_DAILY_TOKEN_LIMIT),
    }
    used = {"total": total_used, "today": day_used}
    # PostgreSQL sums bigints as numeric.
    held = {"total": int(held_total), "today": int(held_today)}

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
        "resets_at": day_resets_at(day).isoformat() if day else None,
    }


def _add_to_quota(cursor: Any, sql: _Statements, params: list, user_id: int) -> tuple | None:
    """Settle's counter update; (total_used, day, day_used) after it, or None when
    the user has no quota row."""
    cursor.execute(sql.settle_quota, params)
    if sql.returning:
        return cursor.fetchone()
    if cursor.rowcount == 0:
        return None
    cursor.execute(sql.read_quota, [user_id])
    return cursor.fetchone()


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
    game_id = game.pk if game is not None else None
    game_limit = game.daily_token_limit_per_player if game is not None else None
    db = connections[DEFAULT_DB_ALIAS]
    sql = _statements(db)
    as_date, as_datetime = db.ops.adapt_datefield_value, db.ops.adapt_datetimefield_value

    with transaction.atomic(), db.cursor() as cursor:
        total_used, day, day_used = _lock_user_quota(db, cursor, sql, user.pk, now)
        if day is None or day < today:
            day_used = 0
            cursor.execute(sql.new_day, [as_date(today), as_datetime(now), user.pk])
        elif day > today:
            # Another worker's clock has already passed midnight: count on its
            # day, so the two never hold the same day's tokens apart.
            today = day
        db_today = as_date(today)

        # A crashed worker's reservations would hold capacity forever otherwise.
        cursor.execute(sql.delete_expired, [user.pk, as_datetime(now)])
        # No game: 0 is no game's id, so the game's sum is 0.
        cursor.execute(sql.held_for_reserve, [db_today, db_today, game_id or 0, user.pk])
        held_total, held_today, held_game = (int(value) for value in cursor.fetchone())

        game_used = 0
        if game_id is not None:
            cursor.execute(sql.game_quota, [user.pk, game_id])
            row = cursor.fetchone()
            if row is None:
                cursor.execute(sql.create_game_quota, [user.pk, game_id, db_today])
                cursor.execute(sql.game_quota, [user.pk, game_id])
                row = cursor.fetchone()
            game_day, game_used = _as_date(row[0]), row[1]
            if game_day < today:
                game_used = 0
                cursor.execute(sql.game_new_day, [db_today, user.pk, game_id])

        # What is left under each limit that applies: (left, kind, limit).
        left_under: list[tuple[int, str, int]] = []
        if (limit := user.effective_token_limit) is not None:
            left_under.append((limit - total_used - held_total, "total", limit))
        if (limit := user.effective_daily_token_limit) is not None:
            left_under.append((limit - day_used - held_today, "daily", limit))
        if game_limit is not None:
            left_under.append((game_limit - game_used - held_game, "game_daily", game_limit))

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

        reservation_id = uuid.uuid4()
        tokens = prompt_estimate + max_tokens
        cursor.execute(
            sql.insert_reservation,
            [
                QuotaReservation._meta.pk.get_db_prep_value(reservation_id, db),
                user.pk,
                game_id,
                tokens,
                db_today,
                as_datetime(timezone.now()),
                as_datetime(now + timedelta(seconds=settings.QUOTA_RESERVATION_TTL_S)),
            ],
        )
    return Reservation(
        id=reservation_id,
        user_id=user.pk,
        game_id=game_id,
        day=today,
        tokens=tokens,
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
    user_id = reservation.user_id
    db = connections[DEFAULT_DB_ALIAS]
    sql = _statements(db)
    # Built first: its fields adapt the values the insert below writes, as the
    # ORM's own insert would, and it is what the caller gets back.
    record = UsageRecord(
        user_id=user_id,
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
    settled_day = db.ops.adapt_datefield_value(reservation.day)

    with transaction.atomic(), db.cursor() as cursor:
        now = timezone.now()
        db_now = db.ops.adapt_datetimefield_value(now)
        # The update takes the quota row's lock (PostgreSQL) as the reservation's
        # SELECT … FOR UPDATE does; on SQLite the transaction holds the write lock.
        update = [total, settled_day, total, db_now, user_id]
        row = _add_to_quota(cursor, sql, update, user_id)
        if row is None:
            # No quota row (deleted by hand while the request ran): start one.
            cursor.execute(sql.create_quota, [user_id, db_now])
            row = _add_to_quota(cursor, sql, update, user_id)
        total_used, day, day_used = row
        day = _as_date(day)
        if reservation.game_id is not None:
            cursor.execute(sql.settle_game, [total, user_id, reservation.game_id, settled_day])
        cursor.execute(
            sql.delete_reservation,
            [QuotaReservation._meta.pk.get_db_prep_value(reservation.id, db)],
        )
        values = [
            field.get_db_prep_save(field.pre_save(record, add=True), db)
            for field in sql.record_fields
        ]
        cursor.execute(sql.insert_record, values)
        if sql.returning:
            record.pk = cursor.fetchone()[0]
        else:
            record.pk = db.ops.last_insert_id(
                cursor, UsageRecord._meta.db_table, UsageRecord._meta.pk.column
            )
        record.quota_after = _quota_after(
            db,
            cursor,
            sql,
            user_id=user_id,
            total_used=total_used,
            day=day,
            day_used=day_used,
            now=now,
        )
    # As if read back: saving it again would update, not insert a second record.
    record._state.adding = False
    record._state.db = db.alias
    return record


def quota_release(*, reservation: Reservation) -> None:
    """Free a reservation whose request never reached a backend (nothing to count)."""
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        cursor.execute(
            _statements(db).delete_reservation,
            [QuotaReservation._meta.pk.get_db_prep_value(reservation.id, db)],
        )


def release_expired_reservations(*, now: datetime | None = None) -> int:
    """Free every expired reservation (a dead worker's); returns how many.

    `quota_reserve` already frees the caller's own; this sweeps everyone's, for
    the admin and a periodic job, so the dashboard's "reserved" figures are true.
    """
    now = now or timezone.now()
    deleted, _ = QuotaReservation.objects.filter(expires_at__lte=now).delete()
    return deleted


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
