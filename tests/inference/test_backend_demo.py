"""The demo backend: deterministic, offline, exact counts, paced like a model."""

from __future__ import annotations

import time

from inference.backends.base import (
    ChatRequest,
    Message,
    Stop,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallEvent,
    Usage,
    collect_text,
)
from inference.backends.demo import DemoBackend, count_tokens

DICE = Tool(
    "roll_dice",
    "Roll dice for the player",
    {
        "type": "object",
        "properties": {
            "sides": {"type": "integer", "default": 20},
            "reason": {"type": "string", "enum": ["attack", "save"]},
            "count": {"type": "integer", "minimum": 1},
            "note": {"type": "string"},
        },
        "required": ["sides", "reason", "count"],
    },
)


def ask(text: str, model: str = "demo", **kwargs) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message("user", text)], **kwargs)


async def collect(request: ChatRequest, backend: DemoBackend | None = None) -> list:
    backend = backend or DemoBackend(tokens_per_second=0)
    return [event async for event in backend.stream(request)]


async def test_it_gives_the_same_answer_to_the_same_prompt():
    first = await collect(ask("How do I balance a platformer?"))
    again = await collect(ask("How do I balance a platformer?"))
    other = await collect(ask("How do I name a dragon?"))
    assert first == again
    assert collect_text(first) != collect_text(other)


async def test_it_says_it_is_the_demo_model():
    text = collect_text(await collect(ask("How do I balance a platformer?")))
    assert text.startswith("(demo model) ")
    assert "platformer" in text


async def test_it_narrates_in_the_second_person_and_asks_what_you_do():
    events = await collect(ask("I open the heavy door with my torch raised", "demo-storyteller"))
    text = collect_text(events)
    assert text.startswith("You open the heavy door with your torch raised. ")
    assert text.endswith("What do you do?")
    assert "(demo model)" not in text
    assert events[-1] == Stop("end_turn")


async def test_it_tells_different_stories_for_different_turns():
    stories = {
        collect_text(await collect(ask(f"Look around, take {n}", "demo-storyteller")))
        for n in range(5)
    }
    assert len(stories) == 5


async def test_it_streams_word_by_word_with_exact_counts():
    request = ChatRequest(
        model="demo",
        system="You help game makers.",
        messages=[
            Message("user", "Hi there!"),
            Message("assistant", "Hello, friend."),
            Message("user", "What's a good first game?"),
        ],
    )
    events = await collect(request)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert all(count_tokens(d.text) == 1 for d in deltas)
    usage = events[-2]
    # "You help game makers ." + "Hi there !" + "Hello , friend ." + "What's a good first game ?"
    assert usage == Usage(prompt_tokens=5 + 3 + 4 + 6, completion_tokens=len(deltas))
    assert usage.completion_tokens == count_tokens(collect_text(events))


async def test_it_counts_words_and_punctuation_as_tokens():
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("You're brave... aren't you?") == 8
    assert count_tokens("") == 0


async def test_it_stops_at_max_tokens():
    events = await collect(ask("Tell me a long story", "demo-storyteller", max_tokens=7))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 7
    assert events[-2].completion_tokens == 7
    assert events[-1] == Stop("max_tokens")


async def test_it_stops_before_a_stop_sequence():
    full = collect_text(await collect(ask("Tell me a long story", "demo-storyteller")))
    stop = full.split()[5]
    events = await collect(ask("Tell me a long story", "demo-storyteller", stop=[stop]))
    text = collect_text(events)
    assert text == full[: full.index(stop)]
    assert events[-2].completion_tokens == count_tokens(text)
    assert events[-1] == Stop("stop_sequence", stop)


async def test_it_paces_tokens_at_the_configured_rate():
    backend = DemoBackend(tokens_per_second=200)
    started = time.monotonic()
    events = await collect(ask("Tell me a story", max_tokens=41), backend)
    elapsed = time.monotonic() - started
    assert len([e for e in events if isinstance(e, TextDelta)]) == 41
    # 41 tokens at 200 per second: the last one is due 0.2 s after the first.
    assert 0.18 <= elapsed < 0.6


async def test_it_takes_its_rate_from_settings(settings):
    settings.INFERENCE_DEMO_TOKENS_PER_S = 0
    started = time.monotonic()
    await collect(ask("Tell me a story"), DemoBackend())
    assert time.monotonic() - started < 0.1
    settings.INFERENCE_DEMO_TOKENS_PER_S = 12.5
    assert DemoBackend().tokens_per_second == 12.5


async def test_it_calls_a_tool_the_player_names():
    events = await collect(ask("Please roll_dice for my attack", "demo-storyteller", tools=[DICE]))
    [call] = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert call.name == "roll_dice"
    assert call.arguments == {"sides": 20, "reason": "attack", "count": 1}
    assert call.id.startswith("call_")
    text = collect_text(events)
    assert events[-2].completion_tokens == (
        count_tokens(text) + count_tokens("roll_dice") + count_tokens(call.arguments_json)
    )
    assert events[-1] == Stop("tool_use")


async def test_it_does_not_call_tools_nobody_asked_for():
    events = await collect(ask("Just describe the room", tools=[DICE]))
    assert not [e for e in events if isinstance(e, ToolCallEvent)]
    refused = await collect(ask("roll_dice now", tools=[DICE], tool_choice="none"))
    assert not [e for e in refused if isinstance(e, ToolCallEvent)]
    forced = await collect(ask("Anything", tools=[DICE], tool_choice="any"))
    assert forced[-1] == Stop("tool_use")


async def test_it_answers_a_tool_result_instead_of_calling_again():
    call = ToolCall("call_1", "roll_dice", {"sides": 20, "reason": "attack", "count": 1})
    request = ChatRequest(
        model="demo-storyteller",
        messages=[
            Message("user", "roll_dice for my attack"),
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", "17", tool_call_id="call_1"),
        ],
        tools=[DICE],
    )
    events = await collect(request)
    assert not [e for e in events if isinstance(e, ToolCallEvent)]
    assert "roll_dice" in collect_text(events)
    assert "17" in collect_text(events)
    assert events[-1] == Stop("end_turn")


async def test_it_serves_every_demo_model_and_is_always_healthy():
    backend = DemoBackend()
    assert [m.id for m in await backend.list_models()] == ["demo", "demo-storyteller"]
    assert await backend.serves("demo")
    assert await backend.serves("demo-anything")
    assert not await backend.serves("llama3.2")
    assert await backend.health()
    assert backend.default_model == "demo"


async def test_it_can_be_closed_mid_stream():
    backend = DemoBackend(tokens_per_second=1000)
    stream = backend.stream(ask("Tell me a story"))
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()
