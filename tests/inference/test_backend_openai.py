"""The OpenAI-compatible backend, through the real `openai` SDK against the fake."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest

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
    retry_after,
)
from inference.backends.openai import OpenAIBackend, token_limit_field
from inference.errors import (
    ConnectionFailed,
    InferenceTimeout,
    InvalidRequest,
    ModelNotAvailable,
    UpstreamError,
)
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import REPLY_WORDS, Fault

WEATHER = Tool(
    name="get_weather",
    description="The weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


def reply_text(words: int) -> str:
    return " ".join(REPLY_WORDS[:words])


def ask(text: str = "Where am I now", **kwargs) -> ChatRequest:
    return ChatRequest(model="gpt-test", messages=[Message("user", text)], **kwargs)


async def events_of(backend: OpenAIBackend, request: ChatRequest) -> list:
    return [event async for event in backend.stream(request)]


async def eventually(condition, timeout: float = 3.0) -> bool:
    """Poll `condition`: the fake serves from its own thread."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return bool(condition())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def backend(openai_upstream: FakeOpenAI):
    backend = OpenAIBackend(base_url=openai_upstream.base_url, api_key="sk-test", timeout=5)
    yield backend
    await backend.aclose()


# --- answers -------------------------------------------------------------------------


async def test_it_streams_text_then_exact_usage_then_stop(backend):
    events = await events_of(backend, ask())
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 12
    assert collect_text(events) == reply_text(12)
    assert events[-2:] == [Usage(prompt_tokens=4, completion_tokens=12), Stop("end_turn")]


async def test_it_streams_with_usage_asked_and_maps_the_request(backend, openai_upstream):
    request = ChatRequest(
        model="gpt-test",
        system="You narrate a dungeon",
        messages=[Message("user", "Look"), Message("assistant", "A hall."), Message("user", "Go")],
        max_tokens=50,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
    )
    events = await events_of(backend, request)
    [body] = openai_upstream.chat_bodies()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "You narrate a dungeon"},
        {"role": "user", "content": "Look"},
        {"role": "assistant", "content": "A hall."},
        {"role": "user", "content": "Go"},
    ]
    # Every compatible server knows max_tokens; some know nothing newer.
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    assert (body["temperature"], body["top_p"], body["stop"]) == (0.5, 0.9, ["END"])
    assert events[-2] == Usage(prompt_tokens=8, completion_tokens=12)


async def test_it_leaves_out_what_the_request_leaves_out(backend, openai_upstream):
    await events_of(backend, ask())
    [body] = openai_upstream.chat_bodies()
    assert not {"temperature", "top_p", "stop", "tools", "tool_choice"} & set(body)


def test_it_sends_max_completion_tokens_to_openai_itself():
    assert token_limit_field(None) == "max_completion_tokens"
    assert token_limit_field("https://api.openai.com/v1") == "max_completion_tokens"
    assert token_limit_field("http://localhost:8080/v1") == "max_tokens"


async def test_it_collects_a_whole_answer(backend):
    events = await events_of(backend, ask(max_tokens=5))
    assert collect_text(events) == reply_text(5)
    assert events[-1] == Stop("max_tokens")
    assert events[-2].completion_tokens == 5


async def test_it_ends_at_a_stop_string(backend, openai_upstream):
    events = await events_of(backend, ask(stop=["hall"]))
    assert collect_text(events) == "The torch flickers as you step into the "
    # OpenAI does not say which stop string matched.
    assert events[-1] == Stop("end_turn")


async def test_it_names_the_stop_string_when_the_server_does(backend, openai_upstream):
    openai_upstream.report_stop_string = True
    events = await events_of(backend, ask(stop=["nothing", "hall"]))
    assert events[-1] == Stop("stop_sequence", "hall")


async def test_it_works_with_settings_and_no_key(settings, openai_upstream):
    # Local servers need no key; the SDK insists on one, so a placeholder goes.
    settings.OPENAI_BASE_URL = openai_upstream.base_url
    settings.OPENAI_API_KEY = None
    settings.OPENAI_DEFAULT_MODEL = "gpt-test-mini"
    backend = OpenAIBackend()
    try:
        events = await events_of(backend, ChatRequest(model="", messages=[Message("user", "hi")]))
    finally:
        await backend.aclose()
    assert collect_text(events) == reply_text(12)
    [request] = openai_upstream.requests
    assert request.headers["authorization"] == "Bearer none"
    assert request.json()["model"] == "gpt-test-mini"


# --- tools ---------------------------------------------------------------------------


async def test_it_round_trips_a_tool_call(backend, openai_upstream):
    first = ask("Use get_weather for me", tools=[WEATHER])
    events = await events_of(backend, first)
    [call_event] = [e for e in events if isinstance(e, ToolCallEvent)]
    call = call_event.call
    assert (call.name, call.arguments) == ("get_weather", {"city": "Paris"})
    assert call.id
    assert events[-1] == Stop("tool_use")
    assert events[-2].completion_tokens > 0 and not events[-2].estimated
    [body] = openai_upstream.chat_bodies()
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER.parameters,
            },
        }
    ]

    second = ChatRequest(
        model="gpt-test",
        messages=[
            *first.messages,
            Message("assistant", tool_calls=(call,)),
            Message("tool", "Sunny, 21 C", tool_call_id=call.id, tool_name="get_weather"),
        ],
        tools=[WEATHER],
    )
    events = await events_of(backend, second)
    assert collect_text(events) == reply_text(12)
    assert events[-1] == Stop("end_turn")
    sent = openai_upstream.chat_bodies()[-1]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("any", "required"),
        ("auto", "auto"),
        ("none", "none"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
async def test_it_maps_tool_choice(backend, openai_upstream, choice, sent):
    await events_of(backend, ask(tools=[WEATHER], tool_choice=choice))
    assert openai_upstream.chat_bodies()[0]["tool_choice"] == sent


async def test_it_emits_a_forced_tool_call_whole(backend):
    events = await events_of(backend, ask("Hello", tools=[WEATHER], tool_choice="any"))
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert calls == [ToolCall(id=calls[0].id, name="get_weather", arguments={"city": "Paris"})]
    assert collect_text(events) == ""


# --- usage ---------------------------------------------------------------------------


async def test_it_estimates_usage_when_the_server_sends_none(backend, openai_upstream):
    openai_upstream.usage_chunk = False
    events = await events_of(backend, ask("Where am I now"))
    usage = events[-2]
    assert usage.estimated is True
    assert usage.prompt_tokens == (len("Where am I now") + 3) // 4
    assert usage.completion_tokens == (len(reply_text(12)) + 3) // 4
    assert events[-1] == Stop("end_turn")


async def test_it_keeps_cached_prompt_tokens_apart():
    class Details:
        cached_tokens = 30

    class Raw:
        prompt_tokens, completion_tokens, prompt_tokens_details = 100, 5, Details()

    usage = OpenAIBackend._usage(Raw())
    assert (usage.prompt_tokens, usage.cache_read_tokens, usage.completion_tokens) == (70, 30, 5)
    assert usage.total_tokens == 105


# --- errors --------------------------------------------------------------------------


async def test_it_reports_a_refused_request_with_the_upstream_message(backend):
    with pytest.raises(InvalidRequest) as caught:
        await events_of(backend, ask(temperature=5))
    assert "temperature" in caught.value.message


async def test_it_reports_refused_credentials_as_the_platforms_problem(backend, openai_upstream):
    openai_upstream.api_key = "sk-other"
    with pytest.raises(UpstreamError) as caught:
        await events_of(backend, ask())
    assert caught.value.retryable is False
    assert caught.value.code == "UPSTREAM_ERROR"


async def test_it_reports_an_unknown_model(backend):
    with pytest.raises(ModelNotAvailable):
        await events_of(backend, ChatRequest(model="gpt-nope", messages=[Message("user", "hi")]))


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"retry-after-ms": "1500"}, 1.5), ({"retry-after": "7"}, 7.0), ({}, None)],
)
async def test_it_reports_rate_limits_as_retryable_with_the_wait(
    backend, openai_upstream, headers, wait
):
    openai_upstream.script(Fault.with_status(429, headers=headers))
    with pytest.raises(UpstreamError) as caught:
        await events_of(backend, ask())
    assert caught.value.retryable is True
    assert caught.value.retry_after == wait
    # The platform retries, never the SDK underneath it.
    assert len(openai_upstream.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_it_reports_server_errors_as_retryable(backend, openai_upstream, status):
    openai_upstream.script(Fault.with_status(status))
    with pytest.raises(UpstreamError) as caught:
        await events_of(backend, ask())
    assert caught.value.retryable is True
    assert len(openai_upstream.requests) == 1


async def test_it_quotes_an_error_answer_that_is_not_json(backend, openai_upstream):
    # A proxy in front of the model server answers with its own HTML page.
    openai_upstream.script(Fault.with_status(502, "<html><h1>502 Bad Gateway</h1></html>"))
    with pytest.raises(UpstreamError) as caught:
        await events_of(backend, ask())
    assert caught.value.retryable is True
    assert "502 Bad Gateway" in caught.value.message
    assert caught.value.details["upstream_status"] == 502


async def test_it_reports_a_model_list_that_is_not_one(openai_upstream):
    backend = OpenAIBackend(base_url=openai_upstream.base_url, api_key="k", models_cache_s=0)
    try:
        openai_upstream.models_answer = {"object": "list"}
        with pytest.raises(UpstreamError, match="not readable"):
            await backend.list_models()
        openai_upstream.models_answer = "not json"
        with pytest.raises(UpstreamError, match="not readable"):
            await backend.list_models()
        assert await backend.health() is False
        openai_upstream.models_answer = None
        assert await backend.health() is True
    finally:
        await backend.aclose()


async def test_it_reports_a_server_that_is_not_there():
    backend = OpenAIBackend(base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key="k")
    try:
        with pytest.raises(ConnectionFailed):
            await events_of(backend, ask())
    finally:
        await backend.aclose()


async def test_it_times_out_on_a_server_that_hangs(openai_upstream):
    openai_upstream.script(Fault.hang(2))
    backend = OpenAIBackend(base_url=openai_upstream.base_url, api_key="k", timeout=0.3)
    try:
        with pytest.raises(InferenceTimeout):
            await events_of(backend, ask())
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    "fault",
    [
        Fault.garbage(),
        Fault.with_status(200, "data: {not json}\n\n"),
        Fault.with_status(200, 'data: {"choices": [{"delta": 7}]}\n\n'),
        Fault.with_status(200, 'data: {"hello": "world"}\n\ndata: [DONE]\n\n'),
    ],
    ids=["html", "not-json", "bad-delta", "not-a-chunk"],
)
async def test_it_rejects_an_answer_that_is_not_the_protocol(backend, openai_upstream, fault):
    openai_upstream.script(fault)
    with pytest.raises(UpstreamError) as caught:
        await events_of(backend, ask())
    assert caught.value.retryable is False


async def test_it_reports_an_error_in_the_middle_of_the_stream(backend, openai_upstream):
    openai_upstream.script(Fault.mid_stream_error(after_chunks=3, message="Overloaded"))
    seen = []
    with pytest.raises(UpstreamError) as caught:
        async for event in backend.stream(ask()):
            seen.append(event)
    assert collect_text(seen) == reply_text(3)
    assert "Overloaded" in caught.value.message


async def test_it_reports_a_stream_that_breaks_off(backend, openai_upstream):
    openai_upstream.script(Fault.mid_stream_drop(after_chunks=2))
    seen = []
    with pytest.raises(UpstreamError) as caught:
        async for event in backend.stream(ask()):
            seen.append(event)
    assert collect_text(seen) == reply_text(2)
    assert not any(isinstance(e, Usage | Stop) for e in seen)
    assert caught.value.code == "UPSTREAM_ERROR"


# --- cancellation and pooling ---------------------------------------------------------


async def test_it_closes_the_upstream_response_when_the_caller_goes(backend, openai_upstream):
    openai_upstream.reply_length = 500
    openai_upstream.token_delay = 0.01
    stream = backend.stream(ask(max_tokens=1000))
    assert isinstance(await anext(stream), TextDelta)
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()
    assert await eventually(lambda: openai_upstream.aborted_streams == 1)
    assert openai_upstream.completed_streams == 0


async def test_it_pools_one_client_per_event_loop(backend, openai_upstream):
    assert backend.client() is backend.client()
    await events_of(backend, ask())
    await events_of(backend, ask())
    assert openai_upstream.connections_total == 1

    other: list = []
    thread = threading.Thread(target=lambda: other.append(asyncio.run(_client_of(backend))))
    thread.start()
    thread.join(5)
    assert other and other[0] is not backend.client()


async def _client_of(backend: OpenAIBackend):
    client = backend.client()
    assert backend.client() is client
    await backend.aclose()
    return client


# --- models and health ---------------------------------------------------------------


async def test_it_lists_models_and_caches_the_list(backend, openai_upstream):
    models = await backend.list_models()
    assert [(m.id, m.backend) for m in models] == [
        ("gpt-test-mini", "openai"),
        ("gpt-test", "openai"),
    ]
    openai_upstream.models = ["something-else"]
    assert [m.id for m in await backend.list_models()] == ["gpt-test-mini", "gpt-test"]
    listings = [r for r in openai_upstream.requests if r.path == "/v1/models"]
    assert len(listings) == 1


async def test_it_refreshes_the_list_when_the_cache_expires(openai_upstream):
    backend = OpenAIBackend(base_url=openai_upstream.base_url, api_key="k", models_cache_s=0)
    try:
        await backend.list_models()
        openai_upstream.models = ["something-else"]
        assert [m.id for m in await backend.list_models()] == ["something-else"]
    finally:
        await backend.aclose()


async def test_it_serves_the_models_the_server_lists(backend):
    assert await backend.serves("gpt-test") is True
    assert await backend.serves("llama-elsewhere") is False


async def test_it_tries_any_model_when_the_list_cannot_be_fetched():
    backend = OpenAIBackend(base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key="k")
    try:
        assert await backend.serves("whatever") is True
        assert await backend.health() is False
    finally:
        await backend.aclose()


async def test_it_defaults_to_the_first_listed_model(backend):
    assert backend.default_model == ""
    await backend.list_models()
    assert backend.default_model == "gpt-test-mini"


async def test_it_prefers_the_configured_default_model(openai_upstream):
    backend = OpenAIBackend(
        base_url=openai_upstream.base_url, api_key="k", default_model="gpt-test"
    )
    assert backend.default_model == "gpt-test"


async def test_it_is_healthy_when_the_server_answers(backend):
    assert await backend.health() is True


def test_it_reads_retry_after_in_every_form():
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after": "2.5"}) == 2.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def sse(*chunks: dict, done: bool = True) -> str:
    """A hand-written stream, for answers the fake model never gives."""
    lines = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    return "".join(lines) + ("data: [DONE]\n\n" if done else "")


def choice_chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def test_it_reports_an_answer_that_ends_without_a_finish(backend, openai_upstream):
    openai_upstream.script(Fault.with_status(200, sse(choice_chunk({"content": "Hel"}))))
    with pytest.raises(UpstreamError) as caught:
        await events_of(backend, ask())
    assert caught.value.retryable is True


async def test_it_reports_a_content_filter_as_a_refusal(backend, openai_upstream):
    body = sse(choice_chunk({"content": "I"}), choice_chunk({}, "content_filter"))
    openai_upstream.script(Fault.with_status(200, body))
    events = await events_of(backend, ask())
    assert events[-1] == Stop("refusal")
    assert events[-2].estimated is True


async def test_it_takes_whole_tool_calls_finished_with_stop(backend, openai_upstream):
    # Some compatible servers send each call whole and finish with "stop".
    calls = [
        {
            "index": 0,
            "id": "a",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        },
        {"index": 1, "id": "b", "function": {"name": "get_weather", "arguments": "{}"}},
    ]
    body = sse(choice_chunk({"role": "assistant", "tool_calls": calls}), choice_chunk({}, "stop"))
    openai_upstream.script(Fault.with_status(200, body))
    events = await events_of(backend, ask(tools=[WEATHER]))
    assert [e.call for e in events if isinstance(e, ToolCallEvent)] == [
        ToolCall("a", "get_weather", {"city": "Rome"}),
        ToolCall("b", "get_weather", {}),
    ]
    assert events[-1] == Stop("tool_use")
