"""AnthropicBackend against the fake Anthropic API, through the real SDK."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest

from inference.backends.anthropic import FALLBACK_DEFAULT_MODEL, AnthropicBackend
from inference.backends.base import (
    ChatRequest,
    Event,
    Message,
    Stop,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallEvent,
    Usage,
    collect_text,
)
from inference.errors import (
    ConnectionFailed,
    InferenceTimeout,
    InvalidRequest,
    ModelNotAvailable,
    PayloadTooLarge,
    UpstreamError,
)
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.server import Fault

MODEL = "claude-sonnet-5-5"
WEATHER = Tool(
    name="get_weather",
    description="The weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


@pytest.fixture
async def backend(anthropic_upstream: FakeAnthropic) -> AsyncIterator[AnthropicBackend]:
    backend = AnthropicBackend(api_key="sk-test", base_url=anthropic_upstream.url)
    yield backend
    await backend.aclose()


def chat(text: str = "Describe the hall", **kw) -> ChatRequest:
    return ChatRequest(model=kw.pop("model", MODEL), messages=[Message("user", text)], **kw)


async def collect(backend: AnthropicBackend, request: ChatRequest) -> list[Event]:
    return [event async for event in backend.stream(request)]


def sent_body(upstream: FakeAnthropic) -> dict:
    return json.loads(upstream.requests[-1].body)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_for(condition, seconds: float = 3.0) -> bool:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


# --- answers -----------------------------------------------------------------------------


async def test_it_streams_text_and_exact_usage(backend, anthropic_upstream):
    events = await collect(backend, chat("Describe the hall", system="You narrate"))

    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 12
    assert deltas[0] == TextDelta("The")
    assert events[-2:] == [Usage(prompt_tokens=5, completion_tokens=12), Stop("end_turn")]
    body = sent_body(anthropic_upstream)
    assert body["stream"] is True
    assert body["system"] == "You narrate"
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Describe the hall"}]}
    ]


async def test_it_collects_a_whole_answer(backend, anthropic_upstream):
    anthropic_upstream.reply_length = 4

    events = await collect(backend, chat())

    assert collect_text(events) == "The torch flickers as"
    # The opening figures (prompt known, one output token), then the final ones.
    assert [e for e in events if isinstance(e, Usage)] == [Usage(3, 1), Usage(3, 4)]


async def test_it_reports_max_tokens(backend, anthropic_upstream):
    anthropic_upstream.fill = True

    events = await collect(backend, chat(max_tokens=5))

    assert events[-2:] == [Usage(3, 5), Stop("max_tokens")]


async def test_it_stops_at_a_stop_sequence(backend, anthropic_upstream):
    events = await collect(backend, chat(stop=["step"]))

    assert collect_text(events) == "The torch flickers as you "
    assert events[-1] == Stop("stop_sequence", "step")
    assert sent_body(anthropic_upstream)["stop_sequences"] == ["step"]


async def test_it_counts_cache_tokens(backend, anthropic_upstream):
    anthropic_upstream.cache_read = 40
    anthropic_upstream.cache_creation = 7

    events = await collect(backend, chat())

    usage = [e for e in events if isinstance(e, Usage)][-1]
    assert usage == Usage(3, 12, cache_write_tokens=7, cache_read_tokens=40)
    assert usage.total_tokens == 62


async def test_it_sends_sampling_parameters_under_the_pinned_version(backend, anthropic_upstream):
    events = await collect(backend, chat(temperature=0.3, top_p=0.9))

    assert events[-1] == Stop("end_turn")
    assert anthropic_upstream.requests[-1].headers["anthropic-version"] == "2023-06-01"
    body = sent_body(anthropic_upstream)
    assert (body["temperature"], body["top_p"]) == (0.3, 0.9)


async def test_it_leaves_sampling_parameters_out_when_unset(backend, anthropic_upstream):
    await collect(backend, chat())

    assert "temperature" not in sent_body(anthropic_upstream)
    assert "top_p" not in sent_body(anthropic_upstream)


# --- tools -------------------------------------------------------------------------------


async def test_it_round_trips_a_tool_call(backend, anthropic_upstream):
    first = await collect(backend, chat("What does get_weather say?", tools=[WEATHER]))

    calls = [e.call for e in first if isinstance(e, ToolCallEvent)]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert calls[0].arguments == {"city": "Paris"}
    assert calls[0].id.startswith("toolu_")
    assert first[-1] == Stop("tool_use")
    assert sent_body(anthropic_upstream)["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "input_schema": WEATHER.parameters,
        }
    ]

    second = await collect(
        backend,
        ChatRequest(
            model=MODEL,
            tools=[WEATHER],
            messages=[
                Message("user", "What does get_weather say?"),
                Message("assistant", "", tool_calls=(calls[0],)),
                Message("tool", "Rain, 12 degrees", tool_call_id=calls[0].id),
            ],
        ),
    )

    assert second[-1] == Stop("end_turn")
    assert collect_text(second).startswith("The torch")
    assert sent_body(anthropic_upstream)["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": calls[0].id,
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": calls[0].id, "content": "Rain, 12 degrees"}
            ],
        },
    ]


async def test_it_merges_tool_results_and_same_role_turns(backend, anthropic_upstream):
    calls = (
        ToolCall("toolu_a", "get_weather", {"city": "Paris"}),
        ToolCall("toolu_b", "get_weather", {"city": "Rome"}),
    )
    await collect(
        backend,
        ChatRequest(
            model=MODEL,
            tools=[WEATHER],
            messages=[
                Message("user", "Weather in two cities?"),
                Message("user", "Quickly."),
                Message("assistant", "Checking both.", tool_calls=calls),
                Message("tool", "Sun", tool_call_id="toolu_a"),
                Message("tool", "No such city", tool_call_id="toolu_b", is_error=True),
                Message("user", "And so?"),
            ],
        ),
    )

    assert sent_body(anthropic_upstream)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in two cities?"},
                {"type": "text", "text": "Quickly."},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_b",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "Sun"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_b",
                    "content": "No such city",
                    "is_error": True,
                },
                {"type": "text", "text": "And so?"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("any", {"type": "any"}),
        ("get_weather", {"type": "tool", "name": "get_weather"}),
    ],
)
async def test_it_maps_tool_choice(backend, anthropic_upstream, choice, wire):
    events = await collect(backend, chat("Plan a trip", tools=[WEATHER], tool_choice=choice))

    assert sent_body(anthropic_upstream)["tool_choice"] == wire
    called = any(isinstance(e, ToolCallEvent) for e in events)
    assert called is (choice in ("any", "get_weather"))


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class", "retryable"),
    [
        (401, UpstreamError, False),
        (403, UpstreamError, False),
        (413, PayloadTooLarge, False),
        (500, UpstreamError, True),
        (529, UpstreamError, True),
    ],
)
async def test_it_maps_upstream_statuses(
    backend, anthropic_upstream, status, error_class, retryable
):
    anthropic_upstream.script(Fault.with_status(status))

    with pytest.raises(error_class) as caught:
        await collect(backend, chat())

    assert type(caught.value) is error_class
    assert getattr(caught.value, "retryable", False) is retryable


async def test_it_passes_on_the_upstream_message_of_a_400(backend, anthropic_upstream):
    with pytest.raises(InvalidRequest, match="max_tokens"):
        await collect(backend, chat(max_tokens=0))


async def test_it_maps_an_unknown_model_to_model_not_available(backend):
    with pytest.raises(ModelNotAvailable) as caught:
        await collect(backend, chat(model="claude-nonexistent-1"))

    assert "claude-nonexistent-1" in caught.value.message


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({}, None),
    ],
)
async def test_it_parses_retry_after_of_a_429(backend, anthropic_upstream, headers, seconds):
    anthropic_upstream.script(Fault.with_status(429, headers=headers))

    with pytest.raises(UpstreamError) as caught:
        await collect(backend, chat())

    assert caught.value.retryable is True
    assert caught.value.retry_after == seconds
    # The SDK's own retries are off: the platform retries.
    assert len(anthropic_upstream.requests) == 1


async def test_it_maps_connection_refused_to_connection_failed():
    backend = AnthropicBackend(api_key="k", base_url=f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(ConnectionFailed):
        await collect(backend, chat())
    await backend.aclose()


async def test_it_maps_a_dropped_connection_to_connection_failed(backend, anthropic_upstream):
    anthropic_upstream.script(Fault.drop())

    with pytest.raises(ConnectionFailed) as caught:
        await collect(backend, chat())

    assert caught.value.retryable is True


async def test_it_times_out_a_silent_upstream(anthropic_upstream):
    backend = AnthropicBackend(api_key="k", base_url=anthropic_upstream.url, timeout_s=0.3)
    anthropic_upstream.script(Fault.hang(seconds=5))

    with pytest.raises(InferenceTimeout):
        await collect(backend, chat())
    await backend.aclose()


async def test_it_times_out_a_stream_that_stalls(anthropic_upstream):
    backend = AnthropicBackend(api_key="k", base_url=anthropic_upstream.url, timeout_s=0.3)
    anthropic_upstream.token_delay = 1.0

    with pytest.raises(InferenceTimeout):
        await collect(backend, chat())
    await backend.aclose()


async def test_it_maps_garbage_to_upstream_error(backend, anthropic_upstream):
    anthropic_upstream.script(Fault.garbage())

    with pytest.raises(UpstreamError):
        await collect(backend, chat())


async def test_it_maps_an_error_event_mid_stream(backend, anthropic_upstream):
    anthropic_upstream.script(Fault.mid_stream_error(after_chunks=2, message="Overloaded"))
    received: list[Event] = []

    with pytest.raises(UpstreamError, match="Overloaded") as caught:
        async for event in backend.stream(chat()):
            received.append(event)

    assert received == [Usage(3, 1), TextDelta("The"), TextDelta(" torch")]
    assert caught.value.retryable is True


async def test_it_maps_a_dropped_stream(backend, anthropic_upstream):
    anthropic_upstream.script(Fault.mid_stream_drop(after_chunks=1))
    received: list[Event] = []

    with pytest.raises(UpstreamError):
        async for event in backend.stream(chat()):
            received.append(event)

    assert received == [Usage(3, 1), TextDelta("The")]


# --- connections -------------------------------------------------------------------------


async def test_it_closes_the_upstream_response_when_closed(backend, anthropic_upstream):
    anthropic_upstream.fill = True
    anthropic_upstream.token_delay = 0.02
    stream = backend.stream(chat(max_tokens=500))

    assert await anext(stream) == Usage(3, 1)  # the prompt's count, known at once
    assert await anext(stream) == TextDelta("The")
    connections = anthropic_upstream.open_connections
    await stream.aclose()

    assert await wait_for(lambda: anthropic_upstream.aborted_streams == 1)
    assert await wait_for(lambda: anthropic_upstream.open_connections < connections)
    assert anthropic_upstream.completed_streams == 0


async def test_it_uses_one_client_per_loop(backend, anthropic_upstream):
    await collect(backend, chat())
    client = backend.client
    await collect(backend, chat())

    assert backend.client is client
    assert len(anthropic_upstream.requests) == 2
    assert anthropic_upstream.completed_streams == 2


async def test_it_makes_a_new_client_for_another_loop(backend):
    here = backend.client

    def elsewhere():
        async def other_client():
            return backend.client

        return asyncio.run(other_client())

    there = await asyncio.to_thread(elsewhere)

    assert there is not here
    assert backend.client is here


# --- models and health -------------------------------------------------------------------


async def test_it_lists_every_page_of_models_and_caches_them(backend, anthropic_upstream):
    anthropic_upstream.models = [f"claude-test-{i}" for i in range(150)]

    models = await backend.list_models()
    again = await backend.list_models()

    assert [m.id for m in models] == anthropic_upstream.models
    assert models[0].backend == "anthropic"
    assert again == models
    assert [r.query.get("after_id") for r in anthropic_upstream.requests] == [
        None,
        ["claude-test-99"],
    ]


async def test_it_serves_every_claude_model(backend):
    assert await backend.serves("claude-anything-9")
    assert not await backend.serves("llama3.2")


async def test_it_reports_health(backend, anthropic_upstream):
    assert await backend.health() is True
    assert anthropic_upstream.requests[-1].path == "/v1/models"
    down = AnthropicBackend(api_key="k", base_url=f"http://127.0.0.1:{closed_port()}")
    assert await down.health() is False
    await down.aclose()


async def test_it_defaults_to_the_current_sonnet(settings):
    settings.ANTHROPIC_DEFAULT_MODEL = None
    assert AnthropicBackend(api_key="k").default_model == FALLBACK_DEFAULT_MODEL == MODEL

    settings.ANTHROPIC_DEFAULT_MODEL = "claude-opus-5-5"
    assert AnthropicBackend(api_key="k").default_model == "claude-opus-5-5"
