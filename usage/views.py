from __future__ import annotations

import csv
from datetime import datetime
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from usage import selectors
from usage.charts import daily_chart
from usage.clock import day_resets_at, usage_day

RECENT_RECORDS = 20


def staff_required(view):
    """Signed-in staff only: others are sent to log in, or refused with 403."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def _percent(used: int, limit: int | None) -> float | None:
    if limit is None:
        return None
    if limit == 0:
        return 100.0
    return min(100.0, 100.0 * used / limit)


def _dashboard_context(user) -> dict:
    now = timezone.now()
    summary = selectors.usage_summary(user=user, now=now)
    series = selectors.usage_daily_series(user=user, days=30, now=now)
    used, reserved, limits = summary["used"], summary["reserved"], summary["limits"]
    return {
        "summary": summary,
        "resets_at": day_resets_at(usage_day(now)),
        "percent_today": _percent(used["today"] + reserved["today"], limits["daily"]),
        "percent_total": _percent(used["total"] + reserved["total"], limits["total"]),
        "chart": daily_chart(series),
        "by_model": selectors.usage_by_model(user=user),
        "by_game": selectors.usage_by_game(user=user),
        "recent": selectors.usage_recent_records(user=user, limit=RECENT_RECORDS),
    }


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    context = _dashboard_context(request.user)
    # The page polls for its figures; an htmx request gets just that fragment.
    template = "usage/_figures.html" if request.htmx else "usage/dashboard.html"
    return render(request, template, context)


@require_GET
@staff_required
def all_users(request: HttpRequest) -> HttpResponse:
    return render(request, "usage/all_users.html", {"rows": selectors.usage_all_users()})


def _csv_cell(value) -> str:
    text = "" if value is None else str(value)
    # A cell starting like a formula would run as one in a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@require_GET
@staff_required
def all_users_csv(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y-%m-%d")
    response["Content-Disposition"] = f'attachment; filename="usage-{stamp}.csv"'
    writer = csv.writer(response)
    # (CSV column, selector field)
    columns = [
        ("username", "username"), ("is_active", "is_active"),
        ("limit_total", "limit_total"), ("limit_daily", "limit_daily"),
        ("used_total", "used_total"), ("used_today", "used_today"),
        ("requests", "requests"), ("cost_total_usd", "cost_total"),
        ("cost_today_usd", "cost_today"), ("last_used_at", "last_used_at"),
    ]  # fmt: skip
    writer.writerow([column for column, _ in columns])
    for row in selectors.usage_all_users():
        cells = []
        for _, field in columns:
            value = row[field]
            if isinstance(value, datetime):
                value = value.isoformat()
            cells.append(_csv_cell(value))
        writer.writerow(cells)
    return response
