"""The fake Ollama, driven by the official `ollama` client, behaves like Ollama."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

from tests.fakes.server import Fault


@pytest.fixture
def client(ollama_upstream):
    with ollama.Client(host=ollama_upstream.url) as client:
        yield client


def test_it_says_it_is_running(ollama_upstream):
    assert httpx.get(ollama_upstream.url + "/").text == "Ollama is running"
    head = httpx.head(ollama_upstream.url + "/")
    assert head.status_code == 200
    assert head.content == b""


def test_it_answers_a_chat_without_stream(client, ollama_upstream):
    ollama_upstream.reply_length = 5
    reply = client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hello there"}])
    assert reply.message.content == "The torch flickers as you"
    assert reply.done is True
    assert reply.done_reason == "stop"
    assert reply.prompt_eval_count == 2
    assert reply.eval_count == 5
    assert reply.total_duration > 0


def test_it_streams_ndjson_with_metrics_on_the_last_line(client, ollama_upstream):
    ollama_upstream.reply_length = 4
    parts = list(
        client.chat(
            model="llama3.2:latest",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
            stream=True,
        )
    )
    assert "".join(p.message.content for p in parts) == "The torch flickers as"
    assert [p.done for p in parts] == [False] * 4 + [True]
    assert parts[-1].done_reason == "stop"
    assert parts[-1].prompt_eval_count == 3
    assert parts[-1].eval_count == 4
    assert all(p.prompt_eval_count is None for p in parts[:-1])


def test_it_streams_when_stream_is_omitted(ollama_upstream):
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}]}
    reply = httpx.post(ollama_upstream.url + "/api/chat", json=body)
    assert reply.headers["content-type"] == "application/x-ndjson"
    lines = reply.text.split("\n")
    assert lines[-1] == ""  # every line ends with a newline, and none is blank
    chunks = [json.loads(line) for line in lines[:-1]]
    assert all("message" in chunk for chunk in chunks)
    assert chunks[-1]["done"] is True
    assert ", " not in lines[0]  # compact JSON


def test_it_stops_at_num_predict_with_done_reason_length(client, ollama_upstream):
    ollama_upstream.fill = True
    reply = client.chat(
        model="llama3.2",
        messages=[{"role": "user", "content": "Tell me everything"}],
        options={"num_predict": 7},
    )
    assert reply.done_reason == "length"
    assert reply.eval_count == 7
    assert len(reply.message.content.split()) == 7


def test_it_ends_before_a_stop_sequence(client, ollama_upstream):
    reply = client.chat(
        model="llama3.2",
        messages=[{"role": "user", "content": "Go on"}],
        options={"stop": ["as you"]},
    )
    assert reply.message.content == "The torch flickers "
    assert reply.done_reason == "stop"


def test_it_leaves_out_the_counts_when_told(client, ollama_upstream):
    ollama_upstream.omit_counts = True
    reply = client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])
    assert reply.prompt_eval_count is None
    assert reply.eval_count is None
    assert reply.eval_duration > 0


def test_it_calls_a_tool_the_user_mentions(client, ollama_upstream):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "roll_dice",
                "description": "Roll dice",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "sides": {"type": "integer"},
                        "label": {"type": "string", "enum": ["attack", "save"]},
                    },
                    "required": ["sides", "label"],
                },
            },
        }
    ]
    messages = [{"role": "user", "content": "Please roll_dice for me"}]
    parts = list(client.chat(model="llama3.2", messages=messages, tools=tools, stream=True))
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].function.name == "roll_dice"
    assert calls[0].function.arguments == {"sides": 1, "label": "attack"}
    assert not parts[-2].message.content  # the call arrives whole, with empty content
    assert parts[-1].done is True

    plain = client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}], tools=tools)
    assert plain.message.tool_calls is None


def test_it_lists_models_with_details(client, ollama_upstream):
    ollama_upstream.models = ["llama3.2:latest", "mistral:7b"]
    listed = client.list()
    assert [m.model for m in listed.models] == ["llama3.2:latest", "mistral:7b"]
    assert listed.models[0].details.format == "gguf"
    with httpx.Client(base_url=ollama_upstream.url) as http:
        assert http.head("/api/tags").status_code == 200
        raw = http.get("/api/tags").json()  # same connection: HEAD sent no body
    assert raw["models"][1]["name"] == "mistral:7b"


def test_it_reports_version_and_loaded_models(client, ollama_upstream):
    assert httpx.get(ollama_upstream.url + "/api/version").json() == {"version": "0.12.6"}
    assert client.ps().models == []
    client.chat(model="qwen3:0.6b", messages=[{"role": "user", "content": "Hi"}])
    assert [m.model for m in client.ps().models] == ["qwen3:0.6b"]


def test_it_answers_404_for_an_unknown_model(client, ollama_upstream):
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="nope", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 404
    assert caught.value.error == "model 'nope' not found"


def test_it_answers_400_without_a_model(ollama_upstream):
    reply = httpx.post(ollama_upstream.url + "/api/chat", json={"messages": []})
    assert reply.status_code == 400
    assert reply.json() == {"error": "model is required"}


def test_it_sends_a_mid_stream_error_as_a_last_line(client, ollama_upstream):
    ollama_upstream.script(Fault.mid_stream_error(after_chunks=2, message="runner crashed"))
    received = []
    with pytest.raises(ollama.ResponseError) as caught:
        for part in client.chat(
            model="llama3.2", messages=[{"role": "user", "content": "Hi"}], stream=True
        ):
            received.append(part.message.content)
    assert caught.value.status_code == -1
    assert caught.value.error == "runner crashed"
    assert received == ["The", " torch"]


def test_it_applies_status_faults_to_chat_only(client, ollama_upstream):
    ollama_upstream.script(Fault.with_status(500))
    assert client.list().models  # the listing does not use up the fault
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 500


def test_it_runs_two_independent_hosts(ollama_upstream, ollama_upstream_b):
    assert ollama_upstream.url != ollama_upstream_b.url
    ollama_upstream_b.models = ["only-on-b:latest"]
    assert [m.model for m in ollama.Client(host=ollama_upstream_b.url).list().models] == [
        "only-on-b:latest"
    ]
    assert "only-on-b:latest" not in ollama_upstream.models
