"""The Ollama backend through the real `ollama` SDK against fake Ollama hosts."""

from __future__ import annotations

import asyncio
import time

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
)
from inference.backends.ollama import (
    OllamaBackend,
    forget_ollama_reachability,
    ollama_reachable,
)
from inference.errors import (
    ConnectionFailed,
    InferenceTimeout,
    InvalidRequest,
    ModelNotAvailable,
    NoBackendAvailable,
    UpstreamError,
)
from tests.fakes.server import Fault
from tests.live import free_port

MODEL = "llama3.2"


def dead_host() -> str:
    """A loopback port nothing listens on: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"


def ask(text: str = "Where am I now", **kwargs) -> ChatRequest:
    return ChatRequest(model=kwargs.pop("model", MODEL), messages=[Message("user", text)], **kwargs)


async def collect(backend: OllamaBackend, request: ChatRequest) -> list:
    return [event async for event in backend.stream(request)]


@pytest.fixture
async def make_backend():
    made: list[OllamaBackend] = []

    def make(hosts: list[str], **kwargs) -> OllamaBackend:
        backend = OllamaBackend(hosts, **{"cooldown_s": 30.0, "models_cache_s": 30.0, **kwargs})
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


# --- answers ---------------------------------------------------------------------------------


async def test_it_streams_text_exact_usage_and_stop(make_backend, ollama_upstream):
    backend = make_backend([ollama_upstream.url])
    events = await collect(backend, ask("Where am I now"))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 12
    assert collect_text(events).startswith("The torch flickers as you step")
    assert events[-2:] == [Usage(prompt_tokens=4, completion_tokens=12), Stop("end_turn")]


async def test_it_sends_the_system_prompt_first_and_the_options(make_backend, ollama_upstream):
    backend = make_backend([ollama_upstream.url])
    request = ask(
        "Hello", system="You are a DM.", max_tokens=50, temperature=0.2, top_p=0.9, stop=["END"]
    )
    await collect(backend, request)
    [body] = ollama_upstream.chat_requests()
    assert body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "You are a DM."},
        {"role": "user", "content": "Hello"},
    ]
    assert body["options"] == {"num_predict": 50, "temperature": 0.2, "top_p": 0.9, "stop": ["END"]}


async def test_it_stops_with_max_tokens_when_ollama_says_length(make_backend, ollama_upstream):
    ollama_upstream.fill = True
    backend = make_backend([ollama_upstream.url])
    events = await collect(backend, ask(max_tokens=5))
    assert len([e for e in events if isinstance(e, TextDelta)]) == 5
    assert events[-2:] == [Usage(prompt_tokens=4, completion_tokens=5), Stop("max_tokens")]


async def test_it_estimates_usage_when_ollama_leaves_the_counts_out(make_backend, ollama_upstream):
    ollama_upstream.omit_counts = True
    ollama_upstream.reply_length = 3  # "The torch flickers": 18 characters
    backend = make_backend([ollama_upstream.url])
    events = await collect(backend, ask("x" * 40, system="y" * 8))
    assert events[-2] == Usage(prompt_tokens=12, completion_tokens=5, estimated=True)


async def test_it_yields_tool_calls_with_ids_and_stops_for_tool_use(make_backend, ollama_upstream):
    backend = make_backend([ollama_upstream.url])
    tool = Tool(
        "get_weather",
        "Weather in a city",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    events = await collect(backend, ask("Use get_weather please", tools=[tool]))
    [call] = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert call.name == "get_weather"
    assert call.arguments == {"city": "example city"}
    assert call.id.startswith("call_")
    assert isinstance(events[-2], Usage) and not events[-2].estimated
    assert events[-1] == Stop("tool_use")
    [body] = ollama_upstream.chat_requests()
    assert body["tools"][0]["function"]["name"] == "get_weather"


async def test_it_sends_tool_calls_and_results_in_ollama_shape(make_backend, ollama_upstream):
    backend = make_backend([ollama_upstream.url])
    call = ToolCall("call_1", "get_weather", {"city": "Paris"})
    request = ChatRequest(
        model=MODEL,
        messages=[
            Message("user", "Weather in Paris?"),
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", "Sunny", tool_call_id="call_1"),
            Message("tool", "No such city", tool_call_id="call_1", is_error=True),
        ],
        tools=[Tool("get_weather")],
    )
    await collect(backend, request)
    [body] = ollama_upstream.chat_requests()
    assert body["messages"][1] == {
        "role": "assistant",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    }
    assert body["messages"][2] == {"role": "tool", "content": "Sunny", "tool_name": "get_weather"}
    assert body["messages"][3]["content"] == "Error: No such city"


async def test_it_sends_no_tools_when_tool_choice_is_none(make_backend, ollama_upstream):
    backend = make_backend([ollama_upstream.url])
    events = await collect(
        backend, ask("Use get_weather", tools=[Tool("get_weather")], tool_choice="none")
    )
    assert not [e for e in events if isinstance(e, ToolCallEvent)]
    assert (
        "tools" not in ollama_upstream.chat_requests()[0]
        or not (ollama_upstream.chat_requests()[0]["tools"])
    )


# --- errors ----------------------------------------------------------------------------------


async def test_it_refuses_a_model_no_host_lists(make_backend, ollama_upstream):
    backend = make_backend([ollama_upstream.url])
    with pytest.raises(ModelNotAvailable):
        await collect(backend, ask(model="no-such-model"))
    assert ollama_upstream.chat_requests() == []


async def test_it_turns_a_404_from_ollama_into_model_not_available(make_backend, ollama_upstream):
    backend = make_backend([ollama_upstream.url])
    ollama_upstream.script(Fault.with_status(404, {"error": f"model '{MODEL}' not found"}))
    with pytest.raises(ModelNotAvailable, match="not found"):
        await collect(backend, ask())
    assert not backend.is_down(ollama_upstream.url)


async def test_it_turns_a_400_into_invalid_request_without_failing_over(
    make_backend, ollama_upstream, ollama_upstream_b
):
    backend = make_backend([ollama_upstream.url, ollama_upstream_b.url])
    ollama_upstream.script(
        Fault.with_status(400, {"error": "top_logprobs must be between 0 and 20"})
    )
    with pytest.raises(InvalidRequest, match="top_logprobs"):
        await collect(backend, ask())
    assert ollama_upstream_b.chat_requests() == []


async def test_it_raises_upstream_error_for_a_mid_stream_error(make_backend, ollama_upstream):
    ollama_upstream.script(Fault.mid_stream_error(after_chunks=3, message="runner crashed"))
    backend = make_backend([ollama_upstream.url])
    received = []
    with pytest.raises(UpstreamError, match="runner crashed"):
        async for event in backend.stream(ask()):
            received.append(event)
    assert collect_text(received) == "The torch flickers"


async def test_it_raises_connection_failed_when_the_stream_breaks(make_backend, ollama_upstream):
    ollama_upstream.script(Fault.mid_stream_drop(after_chunks=2))
    backend = make_backend([ollama_upstream.url])
    with pytest.raises(UpstreamError):
        await collect(backend, ask())


async def test_it_times_out_on_a_host_that_never_answers(make_backend, ollama_upstream):
    ollama_upstream.script(Fault.hang(seconds=5))
    backend = make_backend([ollama_upstream.url], timeout=0.3)
    started = time.monotonic()
    with pytest.raises(InferenceTimeout):
        await collect(backend, ask())
    assert time.monotonic() - started < 2


# --- several hosts ---------------------------------------------------------------------------


async def test_it_fails_over_from_a_dead_host(make_backend, ollama_upstream):
    dead = dead_host()
    backend = make_backend([dead, ollama_upstream.url])
    events = await collect(backend, ask())
    assert collect_text(events).startswith("The torch")
    assert backend.is_down(dead)


async def test_it_fails_over_when_a_host_answers_500_and_skips_it_afterwards(
    make_backend, ollama_upstream, ollama_upstream_b
):
    backend = make_backend([ollama_upstream.url, ollama_upstream_b.url])
    ollama_upstream.script(Fault.with_status(500))
    events = await collect(backend, ask())
    assert events[-1] == Stop("end_turn")
    assert len(ollama_upstream.chat_requests()) == 1
    assert len(ollama_upstream_b.chat_requests()) == 1
    assert backend.is_down(ollama_upstream.url)

    await collect(backend, ask())
    assert len(ollama_upstream.chat_requests()) == 1  # cooling down: skipped
    assert len(ollama_upstream_b.chat_requests()) == 2


async def test_it_uses_a_host_again_after_its_cool_down(
    make_backend, ollama_upstream, ollama_upstream_b
):
    backend = make_backend([ollama_upstream.url, ollama_upstream_b.url], cooldown_s=0.2)
    ollama_upstream.script(Fault.with_status(503))
    await collect(backend, ask())
    await asyncio.sleep(0.3)
    assert not backend.is_down(ollama_upstream.url)
    await collect(backend, ask())
    assert len(ollama_upstream.chat_requests()) == 2


async def test_it_fails_over_from_a_host_that_hangs(
    make_backend, ollama_upstream, ollama_upstream_b
):
    backend = make_backend([ollama_upstream.url, ollama_upstream_b.url], timeout=0.3)
    ollama_upstream.script(Fault.hang(seconds=5))
    events = await collect(backend, ask())
    assert events[-1] == Stop("end_turn")
    assert backend.is_down(ollama_upstream.url)


async def test_it_raises_upstream_error_when_every_host_answers_5xx(
    make_backend, ollama_upstream, ollama_upstream_b
):
    backend = make_backend([ollama_upstream.url, ollama_upstream_b.url])
    ollama_upstream.script(Fault.with_status(500))
    ollama_upstream_b.script(Fault.with_status(502))
    with pytest.raises(UpstreamError) as caught:
        await collect(backend, ask())
    assert caught.value.retryable


async def test_it_raises_connection_failed_when_every_host_is_down(make_backend):
    backend = make_backend([dead_host(), dead_host()])
    with pytest.raises(ConnectionFailed):
        await collect(backend, ask())
    # Within the cool-down nothing is tried at all.
    with pytest.raises(NoBackendAvailable):
        await collect(backend, ask())


async def test_it_has_no_backend_without_hosts(make_backend):
    backend = make_backend([])
    with pytest.raises(NoBackendAvailable):
        await collect(backend, ask())
    assert await backend.list_models() == []
    assert await backend.health() is False


async def test_it_sends_a_request_to_the_least_busy_host(
    make_backend, ollama_upstream, ollama_upstream_b
):
    backend = make_backend([ollama_upstream.url, ollama_upstream_b.url])
    ollama_upstream.token_delay = 0.05
    ollama_upstream.reply_length = 40
    first = backend.stream(ask())
    assert isinstance(await anext(first), TextDelta)  # running on the first host
    assert backend.in_flight(ollama_upstream.url) == 1

    await collect(backend, ask())
    assert len(ollama_upstream_b.chat_requests()) == 1
    await first.aclose()
    assert backend.in_flight(ollama_upstream.url) == 0


async def test_it_only_sends_a_model_to_hosts_that_list_it(
    make_backend, ollama_upstream, ollama_upstream_b
):
    ollama_upstream.models = ["llama3.2:latest"]
    ollama_upstream_b.models = ["mistral:7b"]
    backend = make_backend([ollama_upstream.url, ollama_upstream_b.url])
    await collect(backend, ask(model="mistral:7b"))
    assert ollama_upstream.chat_requests() == []
    assert len(ollama_upstream_b.chat_requests()) == 1


# --- closing ---------------------------------------------------------------------------------


async def test_it_closes_the_upstream_response_when_the_stream_is_closed(
    make_backend, ollama_upstream
):
    ollama_upstream.token_delay = 0.02
    ollama_upstream.reply_length = 200
    backend = make_backend([ollama_upstream.url])
    stream = backend.stream(ask())
    await anext(stream)
    await anext(stream)
    await stream.aclose()
    assert backend.in_flight(ollama_upstream.url) == 0
    # Closed by the time aclose() returns, not whenever the garbage collector
    # gets to the SDK's generator: the pooled client holds no connection.
    pool = backend._hosts[0].client.get()._client._transport._pool
    assert pool.connections == []
    deadline = time.monotonic() + 2
    while ollama_upstream.aborted_streams == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert ollama_upstream.aborted_streams == 1
    assert ollama_upstream.completed_streams == 0


# --- models and health -----------------------------------------------------------------------


async def test_it_lists_the_union_of_the_hosts_models(
    make_backend, ollama_upstream, ollama_upstream_b
):
    ollama_upstream.models = ["llama3.2:latest", "qwen3:0.6b"]
    ollama_upstream_b.models = ["qwen3:0.6b", "mistral:7b"]
    backend = make_backend([ollama_upstream.url, ollama_upstream_b.url, dead_host()])
    models = await backend.list_models()
    assert [m.id for m in models] == ["llama3.2:latest", "qwen3:0.6b", "mistral:7b"]
    assert {m.backend for m in models} == {"ollama"}


async def test_it_caches_the_model_list(make_backend, ollama_upstream):
    backend = make_backend([ollama_upstream.url], models_cache_s=0.2)
    assert [m.id for m in await backend.list_models()] == ["llama3.2:latest", "qwen3:0.6b"]
    ollama_upstream.models = ["mistral:7b"]
    assert [m.id for m in await backend.list_models()] == ["llama3.2:latest", "qwen3:0.6b"]
    tags_calls = [r for r in ollama_upstream.requests if r.path == "/api/tags"]
    assert len(tags_calls) == 1
    await asyncio.sleep(0.25)
    assert [m.id for m in await backend.list_models()] == ["mistral:7b"]


async def test_it_serves_a_model_by_name_or_name_latest(make_backend, ollama_upstream):
    ollama_upstream.models = ["llama3.2:latest", "mistral"]
    backend = make_backend([ollama_upstream.url])
    assert await backend.serves("llama3.2")
    assert await backend.serves("llama3.2:latest")
    assert await backend.serves("mistral:latest")
    assert not await backend.serves("llama3.2:70b")


async def test_it_takes_the_configured_default_model_or_the_first_listed(
    make_backend, ollama_upstream, settings
):
    backend = make_backend([ollama_upstream.url], default_model="")
    assert backend.default_model == ""
    await backend.list_models()
    assert backend.default_model == "llama3.2:latest"
    settings.OLLAMA_DEFAULT_MODEL = "qwen3:0.6b"
    assert make_backend([ollama_upstream.url]).default_model == "qwen3:0.6b"


async def test_it_is_healthy_when_any_host_answers(make_backend, ollama_upstream):
    assert await make_backend([dead_host(), ollama_upstream.url]).health() is True
    assert await make_backend([dead_host()]).health() is False


async def test_it_tells_whether_ollama_is_reachable(ollama_upstream):
    assert await ollama_reachable([dead_host(), ollama_upstream.url], refresh=True) is True
    dead = dead_host()
    assert await ollama_reachable([dead], refresh=True) is False
    assert await ollama_reachable([]) is False


async def test_it_remembers_reachability_for_a_while(ollama_upstream):
    hosts = [ollama_upstream.url]
    assert await ollama_reachable(hosts, refresh=True) is True
    before = len(ollama_upstream.requests)
    assert await ollama_reachable(hosts) is True
    assert len(ollama_upstream.requests) == before
    forget_ollama_reachability()
    assert await ollama_reachable(hosts) is True
    assert len(ollama_upstream.requests) == before + 1


async def test_it_lists_models_once_for_many_requests_on_a_cold_cache(
    make_backend, ollama_upstream
):
    backend = make_backend([ollama_upstream.url])
    answers = await asyncio.gather(*(backend.serves("qwen3:0.6b") for _ in range(20)))
    assert all(answers)
    assert len([r for r in ollama_upstream.requests if r.path == "/api/tags"]) == 1
