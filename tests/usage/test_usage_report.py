from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.usage.conftest import spend
from usage.models import ModelPrice

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = StringIO()
    call_command("usage_report", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def usage(owner, friend):
    ModelPrice.objects.create(
        pattern="priced", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("3")
    )
    now = timezone.now()
    spend(owner, tokens=1000, now=now, model="priced")
    spend(owner, tokens=200, now=now, model="priced")
    spend(owner, tokens=50, now=now, model="free")
    spend(friend, tokens=10, now=now - timedelta(days=10), model="free")


def test_it_prints_a_table_per_user_and_model(usage):
    lines = _run().splitlines()
    assert lines[0].split() == [
        "User",
        "Model",
        "Requests",
        "Prompt",
        "Completion",
        "Total",
        "Cost",
        "(USD)",
    ]
    assert lines[2].split() == ["friend", "free", "1", "5", "5", "10", "0.0000"]
    assert lines[3].split() == ["owner", "free", "1", "25", "25", "50", "0.0000"]
    assert lines[4].split() == ["owner", "priced", "2", "600", "600", "1,200", "0.0024"]
    assert lines[-1].split() == ["all", "4", "630", "630", "1,260", "0.0024"]


def test_it_filters_by_day_and_user(usage):
    since = (timezone.now() - timedelta(days=1)).date().isoformat()
    rows = json.loads(_run("--since", since, "--format", "json"))
    assert {row["user"] for row in rows} == {"owner"}
    rows = json.loads(_run("--user", "friend", "--format", "json"))
    assert rows == [
        {
            "user": "friend",
            "model": "free",
            "requests": 1,
            "prompt_tokens": 5,
            "completion_tokens": 5,
            "total_tokens": 10,
            "cost_usd": "0.00000000",
        }
    ]


def test_it_writes_csv(usage):
    rows = list(csv.DictReader(io.StringIO(_run("--format", "csv"))))
    assert len(rows) == 3
    assert rows[2]["model"] == "priced" and rows[2]["total_tokens"] == "1200"


def test_it_says_when_there_is_nothing(db):
    assert _run().strip() == "No usage recorded in that period."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since: expected a date as YYYY-MM-DD"),
        (["--user", "nobody"], "No user named 'nobody'"),
        (["--format", "xml"], "invalid choice"),
    ],
)
def test_it_rejects_bad_arguments(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("usage_report", *args)
