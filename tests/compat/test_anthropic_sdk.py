"""The Anthropic-compatible API driven by the official `anthropic` SDK, as a game
developer would: a platform token, the base URL changed, nothing else."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.compat.helpers import (
    MODELS,
    WEATHER_PARAMETERS,
    only_record,
    set_daily_limit,
    settled_record,
    slow_long_reply,
)
from tests.factories import ApiTokenFactory
from tests.fakes.server import Fault

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": WEATHER_PARAMETERS,
}


@pytest.fixture
def token(live, owner):
    return ApiTokenFactory(owner=owner)


def client(live, secret: str, **kwargs) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=live.url + "/api/inference/anthropic", api_key=secret, **kwargs
    )


def says(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("backend", MODELS)
def test_it_answers_messages_create_with_any_model(live, owner, token, backend):
    message = client(live, token.secret).messages.create(
        model=MODELS[backend], max_tokens=200, messages=says("Where am I now")
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.model == MODELS[backend]
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message._request_id
    record = only_record(owner)
    assert (record.backend, record.model, record.outcome) == (backend, MODELS[backend], "ok")
    assert record.prompt_tokens == message.usage.input_tokens
    assert record.completion_tokens == message.usage.output_tokens > 0
    assert record.token_id == token.pk


@pytest.mark.parametrize("backend", MODELS)
def test_it_streams_with_messages_stream(live, owner, token, backend):
    with client(live, token.secret).messages.stream(
        model=MODELS[backend], max_tokens=200, messages=says("Look around")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    record = only_record(owner)
    assert record.outcome == "ok"
    assert record.prompt_tokens == final.usage.input_tokens
    assert record.completion_tokens == final.usage.output_tokens > 0


def test_it_reports_the_upstream_counts_with_cache(live, owner, token, anthropic_upstream):
    anthropic_upstream.cache_read = 7
    message = client(live, token.secret).messages.create(
        model=MODELS["anthropic"], max_tokens=50, messages=says("Hello there")
    )
    assert message.usage.cache_read_input_tokens == 7
    assert only_record(owner).cache_read_tokens == 7


@pytest.mark.parametrize("backend", ["anthropic", "ollama", "demo"])
def test_it_round_trips_a_tool_call(live, owner, token, backend):
    sdk = client(live, token.secret)
    messages = says("Use get_weather for Paris")
    first = sdk.messages.create(
        model=MODELS[backend], max_tokens=200, messages=messages, tools=[WEATHER_TOOL]
    )
    assert first.stop_reason == "tool_use"
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather" and isinstance(call.input, dict) and call.input["city"]
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"}],
        },
    ]
    second = sdk.messages.create(
        model=MODELS[backend], max_tokens=200, messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.stop_reason == "end_turn" and second.content[0].text


def test_it_streams_a_tool_call(live, owner, token):
    with client(live, token.secret).messages.stream(
        model=MODELS["anthropic"],
        max_tokens=200,
        messages=says("Use get_weather for Paris"),
        tools=[WEATHER_TOOL],
    ) as stream:
        final = stream.get_final_message()
    [call] = [block for block in final.content if block.type == "tool_use"]
    assert call.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"
    assert only_record(owner).completion_tokens == final.usage.output_tokens


def test_it_passes_stop_sequences(live, owner, token):
    message = client(live, token.secret).messages.create(
        model=MODELS["demo"], max_tokens=200, messages=says("Hello"), stop_sequences=["demo"]
    )
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "demo"


def test_it_refuses_a_bad_token_as_authentication_error(live, token):
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client(live, "vgp_not-a-token", max_retries=0).messages.create(
            model="demo", max_tokens=10, messages=says("Hi")
        )
    assert caught.value.type == "authentication_error"
    assert caught.value.request_id


def test_it_refuses_an_unknown_model_as_not_found(live, owner, token):
    with pytest.raises(anthropic.NotFoundError) as caught:
        client(live, token.secret, max_retries=0).messages.create(
            model="claude-no-such-model", max_tokens=10, messages=says("Hi")
        )
    assert caught.value.type == "not_found_error"


def test_it_refuses_missing_max_tokens_as_bad_request(live, token):
    response = httpx.post(
        live.url + "/api/inference/anthropic/v1/messages",
        headers={"x-api-key": token.secret, "anthropic-version": "2023-06-01"},
        json={"model": "demo", "messages": says("Hi")},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    assert body["request_id"] == response.headers["request-id"]


def test_it_refuses_a_quota_refusal_without_retrying(live, owner, token):
    set_daily_limit(owner, 10)
    # Default retries: the refusal must come back at once, not after the
    # hours its retry-after names.
    with pytest.raises(anthropic.RateLimitError) as caught:
        client(live, token.secret).messages.create(
            model="demo", max_tokens=100, messages=says("Hi")
        )
    error = caught.value
    assert error.type == "rate_limit_error"
    assert error.error_code == "quota_exceeded"
    assert error.response.headers["x-should-retry"] == "false"
    assert int(error.response.headers["retry-after"]) > 0


def test_it_reports_a_mid_stream_failure_as_an_error_event(live, owner, token, anthropic_upstream):
    anthropic_upstream.script(Fault.mid_stream_error(after_chunks=3))
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client(live, token.secret, max_retries=0).messages.stream(
            model=MODELS["anthropic"], max_tokens=200, messages=says("Tell me more")
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
    assert caught.value.status_code == 200
    record = only_record(owner)
    assert record.outcome == "error"


def test_it_lists_models_in_pages(live, token):
    sdk = client(live, token.secret)
    ids = [model.id for model in sdk.models.list(limit=2)]
    assert {"claude-sonnet-5-5", "demo", "qwen3:0.6b"} <= set(ids)
    assert len(ids) == len(set(ids))
    first = sdk.models.list(limit=2)
    assert first.has_more and len(first.data) == 2
    model = sdk.models.retrieve("qwen3:0.6b")
    assert model.id == "qwen3:0.6b" and model.type == "model"
    with pytest.raises(anthropic.NotFoundError):
        client(live, token.secret, max_retries=0).models.retrieve("no-such-model")


def test_it_serves_the_first_sprint_path(live, owner, token):
    response = httpx.post(
        live.url + "/api/inference/anthropic/messages?beta=true",
        headers={"x-api-key": token.secret, "anthropic-version": "2023-06-01"},
        json={"model": "demo", "max_tokens": 50, "messages": says("Hi")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "message" and body["content"][0]["text"]
    assert response.headers["request-id"].startswith("req_")
    assert only_record(owner).completion_tokens == body["usage"]["output_tokens"]


def test_it_settles_a_stream_the_client_breaks_off(live, owner, token, anthropic_upstream):
    slow_long_reply(anthropic_upstream)
    with client(live, token.secret).messages.stream(
        model=MODELS["anthropic"], max_tokens=1000, messages=says("Talk")
    ) as stream:
        for seen, _ in enumerate(stream.text_stream):
            if seen == 2:
                break
    record = settled_record(owner)
    assert record.outcome == "cancelled"
    assert 0 < record.completion_tokens < 400
