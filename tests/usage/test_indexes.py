"""The ledger's hot tables keep only the indexes their queries use, and every
per-user query still finds one (SQLite's query planner, asked by EXPLAIN)."""

from __future__ import annotations

import pytest
from django.db import connection

from usage.models import QuotaReservation, UsageRecord
from usage.services import _statements

pytestmark = pytest.mark.django_db


def constraints(model) -> dict:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, model._meta.db_table)


def index_names(model) -> set[str]:
    return {
        name
        for name, info in constraints(model).items()
        if info["index"] and not info["primary_key"] and not info["unique"]
    }


def plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return " ".join(str(row[-1]) for row in cursor.fetchall())


@pytest.fixture(autouse=True)
def _sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("the query plans are SQLite's")


def test_a_reservation_is_written_to_one_index():
    assert index_names(QuotaReservation) == {"reservation_user_expires"}


def test_a_usage_record_has_no_index_its_composite_ones_cover():
    names = index_names(UsageRecord)
    assert {"usage_user_day", "usage_user_created", "usage_game_user_day"} <= names
    columns = {
        tuple(info["columns"]) for name, info in constraints(UsageRecord).items() if name in names
    }
    assert ("user_id",) not in columns
    assert ("game_id",) not in columns


def test_the_ledgers_reservation_queries_use_the_index():
    sql = _statements(connection)
    assert "reservation_user_expires" in plan(sql.held_for_reserve, ["2026-11-22"] * 2 + [0, 1])
    assert "reservation_user_expires" in plan(sql.delete_expired, [1, "2026-11-22 00:00:00"])
    assert "reservation_user_expires" in plan(sql.held_after, ["2026-11-22", "x", 1])


@pytest.mark.parametrize(
    "queryset",
    [
        lambda: UsageRecord.objects.filter(user_id=1, day__gte="2026-11-01"),
        lambda: UsageRecord.objects.filter(user_id=1).order_by("-created_at")[:20],
        lambda: UsageRecord.objects.filter(game_id=1, user_id=1, day="2026-11-22"),
        lambda: UsageRecord.objects.filter(user_id=1),
    ],
)
def test_per_user_record_queries_use_an_index(queryset):
    sql, params = queryset().query.sql_with_params()
    assert "USING INDEX" in plan(sql, list(params)) or "USING COVERING INDEX" in plan(
        sql, list(params)
    )
