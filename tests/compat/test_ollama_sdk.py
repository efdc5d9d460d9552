"""The Ollama-compatible API driven by the official `ollama` client, as a game
developer would: a platform token in the headers, the host changed."""

from __future__ import annotations

import json

import httpx
import ollama
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


def client(live, secret: str) -> ollama.Client:
    return ollama.Client(
        host=live.url + "/api/inference/ollama", headers={"Authorization": "Bearer " + secret}
    )


def says(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("backend", MODELS)
def test_it_answers_a_chat_with_any_model(live, owner, token, backend):
    response = client(live, token.secret).chat(
        model=MODELS[backend],
        messages=[{"role": "system", "content": "Be brief."}, *says("Where am I now")],
        options={"num_predict": 200, "temperature": 0.5},
    )
    assert response.done and response.done_reason == "stop"
    assert response.model == MODELS[backend]
    assert response.message.role == "assistant" and response.message.content
    assert response.total_duration > 0
    record = only_record(owner)
    assert (record.backend, record.model, record.outcome) == (backend, MODELS[backend], "ok")
    assert record.prompt_tokens == response.prompt_eval_count
    assert record.completion_tokens == response.eval_count > 0


@pytest.mark.parametrize("backend", MODELS)
def test_it_streams_ndjson_chunks(live, owner, token, backend):
    chunks = list(
        client(live, token.secret).chat(
            model=MODELS[backend], messages=says("Look around"), stream=True
        )
    )
    *parts, last = chunks
    assert parts and not any(part.done for part in parts)
    assert "".join(part.message.content for part in parts)
    assert last.done and last.done_reason == "stop" and last.message.content == ""
    record = only_record(owner)
    assert record.prompt_tokens == last.prompt_eval_count
    assert record.completion_tokens == last.eval_count > 0


def test_it_streams_when_stream_is_left_out(live, owner, token):
    response = httpx.post(
        live.url + "/api/inference/ollama/api/chat",
        headers={"Authorization": f"Bearer {token.secret}"},
        json={"model": "demo", "messages": says("Hello")},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) > 2 and lines[-1]["done"] is True
    assert all(line["done"] is False for line in lines[:-1])
    assert "" not in response.text.split("\n")[:-1]  # no blank lines


def test_it_reports_length_when_num_predict_runs_out(live, owner, token):
    response = client(live, token.secret).chat(
        model="demo", messages=says("Tell me a long story"), options={"num_predict": 3}
    )
    assert response.done_reason == "length"
    assert response.eval_count == 3 == only_record(owner).completion_tokens


@pytest.mark.parametrize("backend", ["anthropic", "ollama", "demo"])
def test_it_round_trips_a_tool_call(live, owner, token, backend):
    sdk = client(live, token.secret)
    messages = says("Use get_weather for Paris")
    first = sdk.chat(model=MODELS[backend], messages=messages, tools=[WEATHER_TOOL])
    [call] = first.message.tool_calls
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, dict) and call.function.arguments["city"]
    messages += [
        first.message.model_dump(exclude_none=True),
        {"role": "tool", "content": "Sunny", "tool_name": "get_weather"},
    ]
    second = sdk.chat(model=MODELS[backend], messages=messages, tools=[WEATHER_TOOL])
    assert second.message.content and not second.message.tool_calls


def test_it_streams_a_tool_call_whole(live, owner, token):
    chunks = list(
        client(live, token.secret).chat(
            model=MODELS["anthropic"],
            messages=says("Use get_weather for Paris"),
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    calls = [call for chunk in chunks for call in chunk.message.tool_calls or []]
    assert [call.function.arguments for call in calls] == [{"city": "Paris"}]
    assert chunks[-1].done


def test_it_refuses_a_bad_token(live, token):
    with pytest.raises(ollama.ResponseError) as caught:
        client(live, "vgp_not-a-token").chat(model="demo", messages=says("Hi"))
    assert caught.value.status_code == 401
    assert "token" in caught.value.error.lower()


def test_it_refuses_an_unknown_model(live, token):
    with pytest.raises(ollama.ResponseError) as caught:
        client(live, token.secret).chat(model="claude-no-such-model", messages=says("Hi"))
    assert caught.value.status_code == 404


def test_it_refuses_a_quota_refusal(live, owner, token):
    set_daily_limit(owner, 10)
    with pytest.raises(ollama.ResponseError) as caught:
        client(live, token.secret).chat(model="demo", messages=says("Hi"))
    assert caught.value.status_code == 429
    assert "limit" in caught.value.error


def test_it_reports_a_mid_stream_failure_as_a_last_error_line(live, owner, token, ollama_upstream):
    ollama_upstream.script(Fault.mid_stream_error(after_chunks=3))
    with pytest.raises(ollama.ResponseError) as caught:
        for _ in client(live, token.secret).chat(
            model=MODELS["ollama"], messages=says("Tell me more"), stream=True
        ):
            pass
    assert caught.value.status_code == -1
    assert only_record(owner).outcome == "error"


def test_it_lists_the_platform_models(live, token):
    listed = client(live, token.secret).list()
    names = [model.model for model in listed.models]
    assert {"claude-sonnet-5-5", "demo", "qwen3:0.6b"} <= set(names)


def test_it_serves_the_first_sprint_paths(live, owner, token):
    headers = {"Authorization": f"Bearer {token.secret}"}
    models = httpx.get(live.url + "/api/inference/ollama/models", headers=headers)
    assert models.status_code == 200 and models.json()["models"]
    chat = httpx.post(
        live.url + "/api/inference/ollama/chat",
        headers=headers,
        json={"model": "demo", "messages": says("Hi"), "stream": False},
    )
    assert chat.status_code == 200 and chat.json()["message"]["content"]
    assert only_record(owner).completion_tokens == chat.json()["eval_count"]


def test_it_answers_the_probes_tools_make(live):
    root = live.url + "/api/inference/ollama"
    assert httpx.get(root).text == "Ollama is running"
    assert httpx.get(root + "/").text == "Ollama is running"
    assert httpx.head(root + "/").status_code == 200
    assert httpx.get(root + "/api/version").json()["version"]


def test_it_settles_a_stream_the_client_breaks_off(live, owner, token, ollama_upstream):
    slow_long_reply(ollama_upstream)
    chunks = client(live, token.secret).chat(
        model=MODELS["ollama"],
        messages=says("Talk"),
        options={"num_predict": 1000},
        stream=True,
    )
    for seen, _ in enumerate(chunks):
        if seen == 2:
            break
    chunks.close()
    record = settled_record(owner)
    assert record.outcome == "cancelled"
    assert 0 < record.completion_tokens < 400
