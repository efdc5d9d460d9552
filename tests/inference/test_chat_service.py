"""inference.services: the life of one chat run, whatever renders it."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from accounts.auth import Principal
from inference.backends.base import ChatRequest, Message, TextDelta
from inference.errors import Forbidden
from inference.services import chat_complete, chat_start, wait_for_settlements
from tests.factories import ApiTokenFactory
from usage.models import QuotaReservation, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


def story(model: str = "demo-storyteller", max_tokens: int = 200) -> ChatRequest:
    return ChatRequest(
        model=model, messages=[Message("user", "Tell me a story")], max_tokens=max_tokens
    )


async def test_it_settles_a_stream_nobody_started_reading(owner):
    run = await chat_start(principal=Principal(user=owner), request=story())
    run.settle_unless_consumed(after=0.05)
    await asyncio.sleep(0.2)
    await wait_for_settlements()
    record = await sync_to_async(UsageRecord.objects.get)(user=owner)
    assert record.outcome == "cancelled"
    assert not await sync_to_async(QuotaReservation.objects.exists)()


async def test_it_settles_once_when_the_reader_stops_early(owner):
    run = await chat_start(principal=Principal(user=owner), request=story())
    events = run.events()
    async for event in events:
        if isinstance(event, TextDelta):
            break
    await events.aclose()
    await run.aclose()
    records = await sync_to_async(list)(UsageRecord.objects.filter(user=owner))
    assert [r.outcome for r in records] == ["cancelled"]
    assert records[0].estimated is True


async def test_it_collects_the_whole_answer(owner):
    result = await chat_complete(principal=Principal(user=owner), request=story(max_tokens=9))
    assert result.stop_reason == "max_tokens"
    assert result.usage.completion_tokens == 9
    assert result.quota["used"]["today"] == result.usage.total_tokens


async def test_it_keeps_a_game_token_to_its_game(owner):
    from games.models import Game

    game, other = await sync_to_async(
        lambda: (
            Game.objects.create(slug="one", title="One", allowed_models=["demo"]),
            Game.objects.create(slug="two", title="Two"),
        )
    )()
    token = await sync_to_async(ApiTokenFactory)(owner=owner, game=game)
    principal = Principal(user=owner, token=token)
    with pytest.raises(Forbidden):
        await chat_start(principal=principal, request=story(), game=other)
    with pytest.raises(Forbidden):
        await chat_start(principal=principal, request=story(model="demo-storyteller"))
    result = await chat_complete(principal=principal, request=story(model="demo"))
    record = await sync_to_async(UsageRecord.objects.get)(user=owner)
    assert record.game_id == game.pk and result.backend == "demo"
