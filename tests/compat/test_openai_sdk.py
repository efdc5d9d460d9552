"""The OpenAI-compatible API driven by the official `openai` SDK, as a game
developer would: a platform token, the base URL changed, nothing else."""

from __future__ import annotations

import json

import httpx
import openai
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
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": WEATHER_PARAMETERS,
    },
}


@pytest.fixture
def token(live, owner):
    return ApiTokenFactory(owner=owner)


def client(live, secret: str, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/api/inference/openai/v1", api_key=secret, **kwargs)


def says(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("backend", MODELS)
def test_it_answers_a_chat_completion_with_any_model(live, owner, token, backend):
    completion = client(live, token.secret).chat.completions.create(
        model=MODELS[backend],
        messages=[{"role": "developer", "content": "Be brief."}, *says("Where am I now")],
        max_completion_tokens=200,
    )
    assert completion.object == "chat.completion"
    assert completion.model == MODELS[backend]
    [choice] = completion.choices
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "stop"
    assert completion._request_id
    record = only_record(owner)
    assert (record.backend, record.model, record.outcome) == (backend, MODELS[backend], "ok")
    assert record.prompt_tokens == completion.usage.prompt_tokens
    assert record.completion_tokens == completion.usage.completion_tokens > 0
    assert record.total_tokens == completion.usage.total_tokens


@pytest.mark.parametrize("backend", MODELS)
def test_it_streams_chunks_and_the_usage_chunk(live, owner, token, backend):
    stream = client(live, token.secret).chat.completions.create(
        model=MODELS[backend],
        messages=says("Look around"),
        max_tokens=200,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishing[-1] == "stop" and set(finishing[:-1]) == {None}
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    record = only_record(owner)
    assert record.prompt_tokens == last.usage.prompt_tokens
    assert record.completion_tokens == last.usage.completion_tokens > 0


def test_it_streams_without_a_usage_chunk_unless_asked(live, owner, token):
    chunks = list(
        client(live, token.secret).chat.completions.create(
            model="demo", messages=says("Hello"), stream=True
        )
    )
    assert all(chunk.choices for chunk in chunks)
    assert only_record(owner).outcome == "ok"


def test_it_rebuilds_the_final_completion_with_the_stream_helper(live, owner, token):
    with client(live, token.secret).chat.completions.stream(
        model=MODELS["anthropic"],
        messages=says("Hello"),
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content
    assert final.usage.completion_tokens == only_record(owner).completion_tokens


@pytest.mark.parametrize("backend", ["anthropic", "ollama", "openai", "demo"])
def test_it_round_trips_a_tool_call(live, owner, token, backend):
    sdk = client(live, token.secret)
    messages = says("Use get_weather for Paris")
    first = sdk.chat.completions.create(
        model=MODELS[backend], messages=messages, tools=[WEATHER_TOOL]
    )
    [choice] = first.choices
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"]
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
    ]
    second = sdk.chat.completions.create(
        model=MODELS[backend], messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content


def test_it_streams_tool_call_deltas(live, owner, token):
    chunks = list(
        client(live, token.secret).chat.completions.create(
            model=MODELS["anthropic"],
            messages=says("What is the weather in Paris?"),
            tools=[WEATHER_TOOL],
            tool_choice="required",
            stream=True,
        )
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_it_refuses_a_bad_token_as_authentication_error(live, token):
    with pytest.raises(openai.AuthenticationError) as caught:
        client(live, "vgp_not-a-token", max_retries=0).chat.completions.create(
            model="demo", messages=says("Hi")
        )
    assert caught.value.code == "invalid_api_key"
    assert caught.value.request_id


def test_it_refuses_an_unknown_model_as_not_found(live, token):
    with pytest.raises(openai.NotFoundError) as caught:
        client(live, token.secret, max_retries=0).chat.completions.create(
            model="claude-no-such-model", messages=says("Hi")
        )
    assert caught.value.code == "model_not_found"


def test_it_refuses_several_choices(live, token):
    with pytest.raises(openai.BadRequestError) as caught:
        client(live, token.secret).chat.completions.create(model="demo", messages=says("Hi"), n=2)
    assert caught.value.param == "n"


def test_it_refuses_a_quota_refusal_as_insufficient_quota_without_retrying(live, owner, token):
    set_daily_limit(owner, 10)
    with pytest.raises(openai.RateLimitError) as caught:
        client(live, token.secret).chat.completions.create(model="demo", messages=says("Hi"))
    assert caught.value.code == "insufficient_quota"
    assert caught.value.type == "insufficient_quota"
    assert caught.value.response.headers["x-should-retry"] == "false"


def test_it_reports_a_mid_stream_failure_as_an_error_payload(live, owner, token, openai_upstream):
    openai_upstream.script(Fault.mid_stream_error(after_chunks=3))
    stream = client(live, token.secret, max_retries=0).chat.completions.create(
        model=MODELS["openai"], messages=says("Tell me more"), stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert caught.value.body["type"] == "server_error"
    assert only_record(owner).outcome == "error"


def test_it_lists_and_retrieves_models(live, token):
    sdk = client(live, token.secret)
    models = {model.id: model for model in sdk.models.list()}
    assert {"claude-sonnet-5-5", "demo", "qwen3:0.6b"} <= set(models)
    assert models["demo"].owned_by == "demo"
    assert sdk.models.retrieve("claude-sonnet-5-5").id == "claude-sonnet-5-5"
    with pytest.raises(openai.NotFoundError):
        client(live, token.secret, max_retries=0).models.retrieve("no-such-model")


def test_it_answers_raw_http_with_a_request_id(live, owner, token):
    response = httpx.post(
        live.url + "/api/inference/openai/v1/chat/completions",
        headers={"Authorization": f"Bearer {token.secret}"},
        json={"model": "demo", "messages": says("Hi"), "stop": "demo"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"]
    assert response.json()["choices"][0]["finish_reason"] == "stop"


def test_it_settles_a_stream_the_client_breaks_off(live, owner, token, openai_upstream):
    slow_long_reply(openai_upstream)
    stream = client(live, token.secret).chat.completions.create(
        model=MODELS["openai"], messages=says("Talk"), max_tokens=1000, stream=True
    )
    for seen, _ in enumerate(stream):
        if seen == 3:
            break
    stream.close()
    record = settled_record(owner)
    assert record.outcome == "cancelled"
    assert 0 < record.completion_tokens < 400
