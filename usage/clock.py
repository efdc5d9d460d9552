"""The usage day: the window daily limits count in (USAGE_TIMEZONE, UTC by default)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone


@lru_cache(maxsize=4)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def usage_zone() -> ZoneInfo:
    return _zone(settings.USAGE_TIMEZONE)


def usage_day(now: datetime | None = None) -> date:
    """The usage day `now` falls on."""
    now = now or timezone.now()
    return now.astimezone(usage_zone()).date()


def day_start(day: date) -> datetime:
    """The instant a usage day begins (an aware datetime)."""
    return datetime.combine(day, time.min, tzinfo=usage_zone())


def day_resets_at(day: date) -> datetime:
    """When the daily counters of `day` start again from zero: the next midnight."""
    return day_start(day + timedelta(days=1))
