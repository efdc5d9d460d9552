from __future__ import annotations

import importlib
from decimal import Decimal

import pytest
from django.apps import apps

from inference.backends.base import Usage
from usage.models import ModelPrice
from usage.selectors import model_price_get
from usage.services import cost_usd

pytestmark = pytest.mark.django_db

MILLION = 1_000_000


@pytest.fixture
def seeded_prices():
    # Tests on a flushed database (transaction=True) leave no migration data
    # behind, so the seed runs again here; it keeps rows that exist.
    importlib.import_module("usage.migrations.0002_seed_model_prices").seed(apps, None)


def _price(pattern, inp, out, write="0", read="0"):
    return ModelPrice.objects.update_or_create(
        pattern=pattern,
        defaults={
            "input_per_mtok": Decimal(inp),
            "output_per_mtok": Decimal(out),
            "cache_write_per_mtok": Decimal(write),
            "cache_read_per_mtok": Decimal(read),
        },
    )[0]


def test_it_prices_by_the_exact_row_first():
    _price("zeta-*", "1", "1")
    _price("zeta-large", "5", "25")
    cost = cost_usd(
        model="zeta-large", usage=Usage(prompt_tokens=MILLION, completion_tokens=MILLION)
    )
    assert cost == Decimal("30")


def test_it_falls_back_to_the_longest_matching_pattern():
    _price("zeta-*", "1", "2")
    _price("zeta-large-*", "3", "4")
    usage = Usage(prompt_tokens=MILLION, completion_tokens=MILLION)
    assert cost_usd(model="zeta-large-2027", usage=usage) == Decimal("7")
    assert cost_usd(model="zeta-small", usage=usage) == Decimal("3")


def test_it_prices_cache_writes_and_reads():
    _price("zeta-cached", "3", "15", write="3.75", read="0.30")
    usage = Usage(
        prompt_tokens=10_000,
        completion_tokens=2_000,
        cache_write_tokens=100_000,
        cache_read_tokens=500_000,
    )
    # 0.03 + 0.03 + 0.375 + 0.15
    assert cost_usd(model="zeta-cached", usage=usage) == Decimal("0.585")


def test_it_costs_nothing_for_an_unknown_model():
    ModelPrice.objects.filter(pattern="*").delete()
    assert model_price_get(model="no-such-model") is None
    assert cost_usd(model="no-such-model", usage=Usage(prompt_tokens=MILLION)) == Decimal(0)


def test_it_sees_an_edited_price_at_once():
    price = _price("zeta-edited", "1", "1")
    usage = Usage(prompt_tokens=MILLION)
    assert cost_usd(model="zeta-edited", usage=usage) == Decimal("1")
    price.input_per_mtok = Decimal("2")
    price.save()
    assert cost_usd(model="zeta-edited", usage=usage) == Decimal("2")


def test_it_rounds_to_the_records_precision():
    _price("zeta-tiny", "0.10", "0.50")
    assert cost_usd(
        model="zeta-tiny", usage=Usage(prompt_tokens=1, completion_tokens=1)
    ) == Decimal("0.00000060")


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        ("claude-sonnet-5-5", "claude-sonnet-5-5"),
        ("claude-opus-4-8", "claude-opus-4-8"),
        ("claude-opus-4-9-20270101", "claude-opus-*"),
        ("claude-next", "claude-*"),
        ("demo", "demo*"),
        ("llama3.2:3b", "*"),
    ],
)
def test_it_is_seeded_with_current_models_and_fallbacks(seeded_prices, model, pattern):
    assert model_price_get(model=model).pattern == pattern


def test_it_seeds_local_and_demo_models_at_zero(seeded_prices):
    usage = Usage(prompt_tokens=MILLION, completion_tokens=MILLION)
    assert cost_usd(model="llama3.2", usage=usage) == 0
    assert cost_usd(model="demo", usage=usage) == 0
    assert cost_usd(model="claude-haiku-4-5", usage=usage) == Decimal("6")
