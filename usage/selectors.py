"""Reads of usage, limits and prices. Writes live in usage/services.py.

Everything a user sees is filtered by that user here, so no view can show one
user's usage to another by forgetting a filter.
"""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from usage.clock import day_resets_at, usage_day
from usage.models import ModelPrice, QuotaReservation, UsageRecord, UserQuota

ZERO = Decimal(0)
# Prices change rarely and are read on every settled request; a short in-process
# cache keeps that read off the request path. Saving a price clears it at once in
# this process (see usage/signals.py); other workers see the change within this.
PRICE_CACHE_S = 30.0

_price_lock = threading.Lock()
_price_cache: tuple[float, tuple[ModelPrice, ...]] | None = None
# Each model's price as found in the cached table, so that a settlement does not
# match every pattern of the table again (a few hundred µs for ~70 rows). Cleared
# with the table it was read from.
_price_by_model: dict[str, ModelPrice | None] = {}
# Model names come from callers; the memo stays small whatever they send.
PRICE_MEMO_MAX = 1024


# --- Prices ------------------------------------------------------------------------


def price_cache_clear() -> None:
    global _price_cache
    with _price_lock:
        _price_cache = None
        _price_by_model.clear()


def price_table() -> tuple[ModelPrice, ...]:
    """Every row of the price table, from the short in-process cache."""
    global _price_cache
    cached = _price_cache
    if cached is not None and time.monotonic() - cached[0] < PRICE_CACHE_S:
        return cached[1]
    rows = tuple(ModelPrice.objects.all())
    with _price_lock:
        _price_cache = (time.monotonic(), rows)
        _price_by_model.clear()
    return rows


def model_price_get(*, model: str) -> ModelPrice | None:
    """The price of `model`: its exact row, else the longest pattern matching it."""
    rows = price_table()
    try:
        return _price_by_model[model]
    except KeyError:
        pass
    price = _price_in(rows, model)
    with _price_lock:
        # Only if the table is still the one searched (a refresh may have raced).
        if _price_cache is not None and _price_cache[1] is rows:
            if len(_price_by_model) >= PRICE_MEMO_MAX:
                _price_by_model.clear()
            _price_by_model[model] = price
    return price


def _price_in(rows: tuple[ModelPrice, ...], model: str) -> ModelPrice | None:
    for row in rows:
        if not row.is_pattern and row.pattern == model:
            return row
    # The longest pattern is the most specific: `claude-opus-4*` beats `claude-*`.
    matches = [row for row in rows if row.is_pattern and row.matches(model)]
    return max(matches, key=lambda row: len(row.pattern), default=None)


async def amodel_price_get(*, model: str) -> ModelPrice | None:
    return await sync_to_async(model_price_get)(model=model)


# --- The usage summary (GET /api/inference/usage) ---------------------------------


def _remaining(limit: int | None, used: int, reserved: int) -> int | None:
    if limit is None:
        return None
    return max(0, limit - used - reserved)


def _money(value: Decimal | None) -> float:
    return float(round(value or ZERO, 6))


def usage_quota(*, user: User, now: datetime | None = None) -> dict[str, Any]:
    """The user's limits, counted usage, reservations in flight and what is left:
    two small queries, whatever the user's history (the WebSocket's
    `token_usage`; the settlement returns the same figures as `quota_after`)."""
    now = now or timezone.now()
    today = usage_day(now)
    quota = UserQuota.objects.filter(user=user).first()
    used_total = quota.total_used if quota else 0
    used_today = quota.day_used if quota and quota.day == today else 0
    held = QuotaReservation.objects.filter(user=user, expires_at__gt=now).aggregate(
        total=Coalesce(Sum("tokens"), 0),
        today=Coalesce(Sum("tokens", filter=Q(day=today)), 0),
    )
    limits = {"total": user.effective_token_limit, "daily": user.effective_daily_token_limit}
    return {
        "limits": limits,
        "used": {"total": used_total, "today": used_today},
        "reserved": {"total": held["total"], "today": held["today"]},
        "remaining": {
            "total": _remaining(limits["total"], used_total, held["total"]),
            "today": _remaining(limits["daily"], used_today, held["today"]),
        },
        "resets_at": day_resets_at(today).isoformat(),
    }


async def ausage_quota(*, user: User, now: datetime | None = None) -> dict[str, Any]:
    return await sync_to_async(usage_quota)(user=user, now=now)


def usage_summary(*, user: User, now: datetime | None = None) -> dict[str, Any]:
    """The user's limits, counted usage, reservations in flight, cost, and model
    breakdown, in the shape of DESIGN.md's `GET /api/inference/usage`.

    `used` are the counters the limits are checked against (a reset clears them);
    costs come from the usage records, which a reset keeps.
    """
    now = now or timezone.now()
    today = usage_day(now)
    quota = usage_quota(user=user, now=now)
    cost = UsageRecord.objects.filter(user=user).aggregate(
        total=Sum("cost_usd"),
        today=Sum("cost_usd", filter=Q(day=today)),
    )
    return {
        **quota,
        "cost_usd": {"total": _money(cost["total"]), "today": _money(cost["today"])},
        "by_model": [
            {"model": row["model"], "tokens": row["tokens"], "cost_usd": _money(row["cost"])}
            for row in usage_by_model(user=user)
        ],
    }


async def ausage_summary(*, user: User, now: datetime | None = None) -> dict[str, Any]:
    # One thread hop for all four queries, not one per query.
    return await sync_to_async(usage_summary)(user=user, now=now)


# --- Dashboard --------------------------------------------------------------------


def usage_daily_series(
    *, user: User, days: int = 30, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Tokens, cost and requests per usage day for the last `days` days (today
    last), with empty days present, from the records."""
    today = usage_day(now)
    first = today - timedelta(days=days - 1)
    rows = (
        UsageRecord.objects.filter(user=user, day__gte=first, day__lte=today)
        .values("day")
        .annotate(tokens=Sum("total_tokens"), cost=Sum("cost_usd"), requests=Count("id"))
    )
    by_day = {row["day"]: row for row in rows}
    series = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = by_day.get(day, {})
        series.append(
            {
                "day": day,
                "tokens": row.get("tokens") or 0,
                "cost_usd": row.get("cost") or ZERO,
                "requests": row.get("requests") or 0,
            }
        )
    return series


def usage_by_model(*, user: User, since: date | None = None) -> list[dict[str, Any]]:
    """Requests, tokens and cost per model, the most used first."""
    records = UsageRecord.objects.filter(user=user)
    if since is not None:
        records = records.filter(day__gte=since)
    return list(
        records.values("model")
        .annotate(tokens=Sum("total_tokens"), cost=Sum("cost_usd"), requests=Count("id"))
        .order_by("-tokens", "model")
    )


def usage_by_game(*, user: User, since: date | None = None) -> list[dict[str, Any]]:
    """Requests, tokens and cost per game (`game_title` None: outside any game)."""
    records = UsageRecord.objects.filter(user=user)
    if since is not None:
        records = records.filter(day__gte=since)
    return list(
        records.values("game_id", "game__title", "game__slug")
        .annotate(tokens=Sum("total_tokens"), cost=Sum("cost_usd"), requests=Count("id"))
        .order_by("-tokens", "game__title")
    )


def usage_recent_records(*, user: User, limit: int = 20) -> QuerySet[UsageRecord]:
    return (
        UsageRecord.objects.filter(user=user).select_related("game").order_by("-created_at")[:limit]
    )


def usage_all_users(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per-user figures for staff: limits, counted usage, requests and cost."""
    now = now or timezone.now()
    today = usage_day(now)
    users = (
        get_user_model()
        .objects.select_related("quota")
        .annotate(
            requests=Count("usage_records"),
            cost_total=Sum("usage_records__cost_usd"),
            cost_today=Sum("usage_records__cost_usd", filter=Q(usage_records__day=today)),
            last_used_at=Max("usage_records__created_at"),
        )
        .order_by("username")
    )
    table = []
    for user in users:
        quota = getattr(user, "quota", None)
        used_total = quota.total_used if quota else 0
        used_today = quota.day_used if quota and quota.day == today else 0
        table.append(
            {
                "user": user,
                "username": user.username,
                "is_active": user.is_active,
                "limit_total": user.effective_token_limit,
                "limit_daily": user.effective_daily_token_limit,
                "used_total": used_total,
                "used_today": used_today,
                "requests": user.requests,
                "cost_total": user.cost_total or ZERO,
                "cost_today": user.cost_today or ZERO,
                "last_used_at": user.last_used_at,
            }
        )
    return table


def usage_report_rows(
    *, since: date | None = None, username: str | None = None
) -> list[dict[str, Any]]:
    """Per user and model: requests, prompt, completion and total tokens, cost."""
    records = UsageRecord.objects.all()
    if since is not None:
        records = records.filter(day__gte=since)
    if username is not None:
        records = records.filter(user__username=username)
    return list(
        records.values("user__username", "model")
        .annotate(
            requests=Count("id"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            total_tokens=Sum("total_tokens"),
            cost=Sum("cost_usd"),
        )
        .order_by("user__username", "model")
    )
