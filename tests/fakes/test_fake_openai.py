"""The fake OpenAI server, driven by the official `openai` SDK as a real client."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import REPLY_WORDS, Fault

MESSAGES = [{"role": "user", "content": "Describe the hall in a few words"}]
PROMPT_TOKENS = 7  # the words of MESSAGES
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


def reply_text(words: int) -> str:
    return " ".join(REPLY_WORDS[:words])


@pytest.fixture
def client(openai_upstream: FakeOpenAI):
    with openai.OpenAI(base_url=openai_upstream.base_url, api_key="sk-test", max_retries=0) as sdk:
        yield sdk


def raw_stream(server: FakeOpenAI, body: dict) -> list[str]:
    """The SSE lines of a streamed answer, as they came over the wire."""
    with httpx.stream(
        "POST",
        f"{server.base_url}/chat/completions",
        json=body,
        headers={"Authorization": "Bearer sk-test"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line for line in response.iter_lines() if line]


def test_it_answers_a_chat_completion(client):
    completion = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES
    )
    assert completion.headers["x-request-id"].startswith("req_")
    parsed = completion.parse()
    assert parsed.object == "chat.completion"
    assert parsed.choices[0].message.role == "assistant"
    assert parsed.choices[0].message.content == reply_text(12)
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage.prompt_tokens == PROMPT_TOKENS
    assert parsed.usage.completion_tokens == 12
    assert parsed.usage.total_tokens == PROMPT_TOKENS + 12


def test_it_counts_the_words_of_every_message(client):
    completion = client.chat.completions.create(
        model="gpt-test",
        messages=[
            {"role": "system", "content": "You narrate"},
            {"role": "user", "content": [{"type": "text", "text": "one two three"}]},
        ],
    )
    assert completion.usage.prompt_tokens == 5


def test_it_requires_a_bearer_key(openai_upstream):
    response = httpx.post(
        f"{openai_upstream.base_url}/chat/completions",
        json={"model": "gpt-test", "messages": MESSAGES},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert response.headers["x-request-id"]


def test_it_accepts_only_its_key_when_one_is_set(openai_upstream, client):
    openai_upstream.api_key = "sk-right"
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert caught.value.code == "invalid_api_key"


def test_it_streams_role_then_content_then_finish_then_done(client, openai_upstream):
    chunks = list(client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == reply_text(12)
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop"
    assert last.delta.content is None and last.delta.tool_calls is None
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    # The SDK stops reading at [DONE]; the server finishes a moment later.
    deadline = time.monotonic() + 2
    while openai_upstream.completed_streams != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert openai_upstream.completed_streams == 1


def test_it_frames_the_stream_as_data_lines_ending_in_done(openai_upstream):
    lines = raw_stream(openai_upstream, {"model": "gpt-test", "messages": MESSAGES, "stream": True})
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    # No usage anywhere unless the request asks for it.
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["delta"] == {}


def test_it_sends_a_usage_chunk_when_asked(client, openai_upstream):
    chunks = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS
    assert chunks[-1].usage.completion_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])
    lines = raw_stream(
        openai_upstream,
        {
            "model": "gpt-test",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert all('"usage":null' in line for line in lines[:-2])


def test_it_can_send_usage_although_not_asked(client, openai_upstream):
    openai_upstream.include_usage_even_without_option = True
    chunks = list(client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True))
    assert chunks[-1].usage.completion_tokens == 12


def test_it_can_ignore_stream_options_like_older_servers(client, openai_upstream):
    openai_upstream.usage_chunk = False
    chunks = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_it_stops_at_the_token_limit(client, field):
    completion = client.chat.completions.create(model="gpt-test", messages=MESSAGES, **{field: 5})
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == reply_text(5)
    assert completion.usage.completion_tokens == 5


def test_it_rejects_both_token_limits_at_once(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, max_tokens=5, max_completion_tokens=5
        )


def test_it_fills_the_budget_when_told(client, openai_upstream):
    openai_upstream.fill = True
    completion = client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=40)
    assert completion.usage.completion_tokens == 40
    assert completion.choices[0].finish_reason == "length"


def test_it_replies_at_the_configured_length(client, openai_upstream):
    openai_upstream.reply_length = 3
    completion = client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert completion.choices[0].message.content == reply_text(3)


@pytest.mark.parametrize("stop", ["hall", ["nothing", "hall"]])
def test_it_ends_at_a_stop_string(client, stop):
    completion = client.chat.completions.create(model="gpt-test", messages=MESSAGES, stop=stop)
    assert completion.choices[0].message.content == "The torch flickers as you step into the "
    assert completion.choices[0].finish_reason == "stop"


def test_it_can_name_the_stop_string_like_vllm(client, openai_upstream):
    openai_upstream.report_stop_string = True
    completion = client.chat.completions.create(model="gpt-test", messages=MESSAGES, stop=["you"])
    assert completion.choices[0].model_extra["stop_reason"] == "you"


def test_it_calls_a_tool_the_user_names(client):
    completion = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "Use get_weather for me"}],
        tools=[WEATHER_TOOL],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str)
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 1}


def test_it_does_not_call_tools_nobody_asked_for(client):
    completion = client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, tools=[WEATHER_TOOL]
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.tool_calls is None


@pytest.mark.parametrize(
    "tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_it_calls_the_tool_that_tool_choice_forces(client, tool_choice):
    completion = client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice=tool_choice
    )
    assert completion.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_it_streams_a_tool_call_in_argument_pieces(client):
    chunks = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "get_weather please"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    first = chunks[0].choices[0].delta.tool_calls[0]
    assert first.id and first.function.name == "get_weather" and first.function.arguments == ""
    pieces = [c.choices[0].delta.tool_calls for c in chunks[1:-1]]
    assert len(pieces) > 1
    assert all(p[0].id is None and p[0].index == 0 for p in pieces)
    arguments = "".join(p[0].function.arguments for p in pieces)
    assert json.loads(arguments) == {"city": "Paris", "days": 1}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_it_answers_a_tool_result_with_text(client):
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":1}'},
    }
    completion = client.chat.completions.create(
        model="gpt-test",
        messages=[
            {"role": "user", "content": "get_weather please"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content == reply_text(12)


def test_it_rejects_a_tool_result_without_its_call(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-test",
            messages=[*MESSAGES, {"role": "tool", "tool_call_id": "call_9", "content": "x"}],
        )
    assert "tool_calls" in caught.value.message


def test_it_rejects_tool_arguments_that_are_not_a_string(openai_upstream):
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
    response = httpx.post(
        f"{openai_upstream.base_url}/chat/completions",
        json={"model": "gpt-test", "messages": [{"role": "assistant", "tool_calls": [call]}]},
        headers={"Authorization": "Bearer sk-test"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].tool_calls[0].function.arguments"


def test_it_rejects_out_of_range_values(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, temperature=5)
    assert caught.value.param == "temperature"
    assert caught.value.type == "invalid_request_error"


def test_it_rejects_stream_options_without_stream(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, stream_options={"include_usage": True}
        )
    assert caught.value.param == "stream_options"


def test_it_says_model_not_found_for_unknown_models(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert "gpt-nope" in caught.value.message


@pytest.mark.parametrize(
    ("status", "exception", "code"),
    [
        (400, openai.BadRequestError, None),
        (401, openai.AuthenticationError, "invalid_api_key"),
        (403, openai.PermissionDeniedError, None),
        (404, openai.NotFoundError, "model_not_found"),
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, None),
    ],
)
def test_it_fails_with_scripted_statuses(client, openai_upstream, status, exception, code):
    openai_upstream.script(Fault.with_status(status))
    with pytest.raises(exception) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert caught.value.status_code == status
    assert caught.value.code == code
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    assert caught.value.request_id.startswith("req_")
    if status >= 500:
        assert caught.value.type == "server_error"


def test_it_lets_the_sdk_retry_after_retry_after_ms(openai_upstream):
    openai_upstream.script(Fault.with_status(429, headers={"retry-after-ms": "10"}))
    with openai.OpenAI(base_url=openai_upstream.base_url, api_key="sk-test", max_retries=2) as sdk:
        began = time.monotonic()
        completion = sdk.chat.completions.create(model="gpt-test", messages=MESSAGES)
        elapsed = time.monotonic() - began
    assert completion.choices[0].message.content == reply_text(12)
    counts = [r.headers["x-stainless-retry-count"] for r in openai_upstream.requests]
    assert counts == ["0", "1"]
    # The SDK's own backoff would wait at least 0.375 s.
    assert elapsed < 0.3


def test_it_fails_mid_stream_with_an_error_payload(client, openai_upstream):
    openai_upstream.script(Fault.mid_stream_error(after_chunks=2, message="Overloaded"))
    texts = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, stream=True
        ):
            texts.append(chunk.choices[0].delta.content or "")
    assert caught.value.message == "Overloaded"
    assert caught.value.type == "server_error"
    assert "".join(texts) == reply_text(2)


def test_it_drops_the_connection_mid_stream(client, openai_upstream):
    openai_upstream.script(Fault.mid_stream_drop(after_chunks=3))
    texts = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, stream=True
        ):
            texts.append(chunk.choices[0].delta.content or "")
    assert "".join(texts) == reply_text(3)


def test_it_applies_faults_only_to_chat_completions(client, openai_upstream):
    openai_upstream.script(Fault.with_status(500))
    assert [m.id for m in client.models.list()] == ["gpt-test-mini", "gpt-test"]
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)


def test_it_lists_and_retrieves_models(client, openai_upstream):
    openai_upstream.models = ["llama-local"]
    assert [m.id for m in client.models.list()] == ["llama-local"]
    assert client.models.retrieve("llama-local").owned_by
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-test")


def test_it_answers_unknown_paths_with_an_openai_404(client, openai_upstream):
    response = httpx.get(
        f"{openai_upstream.url}/v2/anything", headers={"Authorization": "Bearer sk-test"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (GET /v2/anything)"
