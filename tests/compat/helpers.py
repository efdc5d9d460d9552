"""Shared pieces of the compatible-endpoint tests."""

from __future__ import annotations

from usage.models import UsageRecord

# One model per backend the live platform serves (its upstreams are the fakes).
MODELS = {
    "anthropic": "claude-sonnet-5-5",
    "ollama": "qwen3:0.6b",
    "openai": "gpt-test",
    "demo": "demo",
}

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def only_record(user) -> UsageRecord:
    """The one usage record a single request must leave."""
    [record] = UsageRecord.objects.filter(user=user)
    return record


def set_daily_limit(user, tokens: int) -> None:
    user.daily_token_limit = tokens
    user.save(update_fields=["daily_token_limit"])


def settled_record(user, *, seconds: float = 10.0) -> UsageRecord:
    """The one usage record, once the server has settled it (a request the
    client broke off settles after the client has gone)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        records = list(UsageRecord.objects.filter(user=user))
        if records:
            [record] = records
            return record
        time.sleep(0.05)
    raise AssertionError("no usage record was written")


def slow_long_reply(upstream) -> None:
    """A fake upstream reply long and slow enough to break off part-way."""
    upstream.reply_length = 400
    upstream.token_delay = 0.02
