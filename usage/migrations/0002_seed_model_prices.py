"""Seed the price table with the public list prices of 2026-11-21 (see docs/usage.md).

USD per million tokens: input, output, cache write (5-minute), cache read.
Rows an administrator already has are left as they are.
"""

from decimal import Decimal

from django.db import migrations

D = Decimal

# (pattern, display name, input, output, cache write, cache read, retired)
PRICES = [
    # Mythos class (Fable is the general release, Mythos the restricted one; same prices).
    ("claude-fable-5-2", "Claude Fable 5.2", D("8"), D("40"), D("10"), D("0.20"), False),
    ("claude-mythos-5-2", "Claude Mythos 5.2", D("8"), D("40"), D("10"), D("0.20"), False),
    ("claude-fable-5-1", "Claude Fable 5.1", D("10"), D("50"), D("12.50"), D("0.25"), False),
    ("claude-mythos-5-1", "Claude Mythos 5.1", D("10"), D("50"), D("12.50"), D("0.25"), False),
    ("claude-fable-5", "Claude Fable 5", D("10"), D("50"), D("12.50"), D("1"), False),
    ("claude-mythos-5", "Claude Mythos 5", D("10"), D("50"), D("12.50"), D("1"), False),
    # Past its end of life (2026-06-30 in the SDK's DEPRECATED_MODELS): not offered.
    (
        "claude-mythos-preview",
        "Claude Mythos Preview",
        D("25"),
        D("125"),
        D("31.25"),
        D("2.50"),
        True,
    ),
    # Opus
    ("claude-opus-5-5", "Claude Opus 5.5", D("4"), D("20"), D("5"), D("0.20"), False),
    ("claude-opus-5", "Claude Opus 5", D("5"), D("25"), D("6.25"), D("0.50"), False),
    ("claude-opus-4-8", "Claude Opus 4.8", D("5"), D("25"), D("6.25"), D("0.50"), False),
    ("claude-opus-4-7", "Claude Opus 4.7", D("5"), D("25"), D("6.25"), D("0.50"), False),
    ("claude-opus-4-6", "Claude Opus 4.6", D("5"), D("25"), D("6.25"), D("0.50"), False),
    ("claude-opus-4-5", "Claude Opus 4.5", D("5"), D("25"), D("6.25"), D("0.50"), False),
    ("claude-opus-4-5-20251101", "Claude Opus 4.5", D("5"), D("25"), D("6.25"), D("0.50"), False),
    # Sonnet
    ("claude-sonnet-5-5", "Claude Sonnet 5.5", D("2"), D("10"), D("2.50"), D("0.10"), False),
    ("claude-sonnet-5", "Claude Sonnet 5", D("2"), D("10"), D("2.50"), D("0.20"), False),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", D("3"), D("15"), D("3.75"), D("0.30"), False),
    # Retires on 2026-11-30 (DEPRECATED_MODELS); mark it retired in the admin then.
    ("claude-sonnet-4-5", "Claude Sonnet 4.5", D("3"), D("15"), D("3.75"), D("0.30"), False),
    (
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        D("3"),
        D("15"),
        D("3.75"),
        D("0.30"),
        False,
    ),
    # Haiku (Haiku 5.5: the rate for prompts up to 100,000 tokens)
    ("claude-haiku-5-5", "Claude Haiku 5.5", D("0.10"), D("0.50"), D("0.125"), D("0.01"), False),
    ("claude-haiku-4-5", "Claude Haiku 4.5", D("1"), D("5"), D("1.25"), D("0.10"), False),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", D("1"), D("5"), D("1.25"), D("0.10"), False),
    # Fallbacks for Claude ids not listed above (dated or newer variants): each
    # family at its highest current rate, so an estimate errs high, never hides spend.
    ("claude-fable-*", "Claude Fable (other)", D("10"), D("50"), D("12.50"), D("1"), False),
    ("claude-mythos-*", "Claude Mythos (other)", D("10"), D("50"), D("12.50"), D("1"), False),
    ("claude-opus-*", "Claude Opus (other)", D("5"), D("25"), D("6.25"), D("0.50"), False),
    ("claude-sonnet-*", "Claude Sonnet (other)", D("3"), D("15"), D("3.75"), D("0.30"), False),
    ("claude-haiku-*", "Claude Haiku (other)", D("1"), D("5"), D("1.25"), D("0.10"), False),
    ("claude-*", "Claude (other)", D("5"), D("25"), D("6.25"), D("0.50"), False),
    # The demo backend and local models (Ollama, llama.cpp, vLLM on own hardware).
    ("demo*", "Demo backend", D("0"), D("0"), D("0"), D("0"), False),
    ("*", "Local and other models", D("0"), D("0"), D("0"), D("0"), False),
]


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("usage", "ModelPrice")
    for pattern, name, inp, out, write, read, retired in PRICES:
        ModelPrice.objects.get_or_create(
            pattern=pattern,
            defaults={
                "display_name": name,
                "input_per_mtok": inp,
                "output_per_mtok": out,
                "cache_write_per_mtok": write,
                "cache_read_per_mtok": read,
                "retired": retired,
            },
        )


def unseed(apps, schema_editor):
    ModelPrice = apps.get_model("usage", "ModelPrice")
    ModelPrice.objects.filter(pattern__in=[row[0] for row in PRICES]).delete()


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
