"""The exact bytes of each compatible stream (the SDKs are lenient; other
clients may not be), driven in-process against the demo model."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from tests.inference.helpers import bearer, make_token
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


async def raw(response) -> str:
    data = b""
    async for part in response.streaming_content:
        data += part
    return data.decode()


async def post(async_client, token, path: str, body: dict):
    return await async_client.post(
        path, data=json.dumps(body), content_type="application/json", headers=bearer(token)
    )


async def record_of(user) -> UsageRecord:
    return await sync_to_async(UsageRecord.objects.get)(user=user)


async def test_it_streams_anthropic_named_events_in_order(async_client, owner):
    token = await make_token(owner)
    body = {
        "model": "demo",
        "max_tokens": 200,
        "stream": True,
        "messages": [{"role": "user", "content": "Please use get_weather for Paris"}],
        "tools": [{"name": "get_weather", "input_schema": WEATHER}],
    }
    response = await post(async_client, token, "/api/inference/anthropic/v1/messages", body)
    assert response["Content-Type"] == "text/event-stream"
    assert response["request-id"].startswith("req_")
    frames = [frame for frame in (await raw(response)).split("\n\n") if frame]
    events = []
    for frame in frames:
        event_line, data_line = frame.split("\n")
        name = event_line.removeprefix("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        events.append(data)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert events[0]["message"]["content"] == [] and events[0]["message"]["stop_reason"] is None
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use"]
    assert [s["index"] for s in starts] == [0, 1]
    tool_delta = next(e for e in events if e.get("delta", {}).get("type") == "input_json_delta")
    assert set(json.loads(tool_delta["delta"]["partial_json"])) == {"city"}
    stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert stops == [0, 1]
    delta = events[-2]
    assert delta["delta"]["stop_reason"] == "tool_use"
    record = await record_of(owner)
    assert delta["usage"]["input_tokens"] == record.prompt_tokens
    assert delta["usage"]["output_tokens"] == record.completion_tokens


async def test_it_streams_openai_data_lines_ending_done(async_client, owner):
    token = await make_token(owner)
    body = {
        "model": "demo",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Hello"}],
    }
    response = await post(async_client, token, "/api/inference/openai/v1/chat/completions", body)
    assert response["Content-Type"] == "text/event-stream"
    frames = [frame for frame in (await raw(response)).split("\n\n") if frame]
    assert all(frame.startswith("data: ") and "\n" not in frame for frame in frames)
    assert frames[-1] == "data: [DONE]"
    chunks = [json.loads(frame.removeprefix("data: ")) for frame in frames[:-1]]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert chunks[-1]["choices"] == []
    record = await record_of(owner)
    assert chunks[-1]["usage"]["completion_tokens"] == record.completion_tokens
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


async def test_it_streams_ollama_ndjson_with_metrics_on_the_last_line(async_client, owner):
    token = await make_token(owner)
    body = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}
    response = await post(async_client, token, "/api/inference/ollama/api/chat", body)
    assert response["Content-Type"] == "application/x-ndjson"
    text = await raw(response)
    assert text.endswith("\n") and "\n\n" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    for line in lines[:-1]:
        assert set(line) == {"model", "created_at", "message", "done"}
        assert line["created_at"].endswith("Z")
    last = lines[-1]
    assert last["done"] is True and last["done_reason"] == "stop"
    record = await record_of(owner)
    assert last["prompt_eval_count"] == record.prompt_tokens
    assert last["eval_count"] == record.completion_tokens
    assert last["total_duration"] >= last["eval_duration"] > 0


async def test_it_answers_anthropic_json_within_max_tokens(async_client, owner):
    token = await make_token(owner)
    body = {"model": "demo", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}
    response = await post(async_client, token, "/api/inference/anthropic/v1/messages", body)
    data = response.json()
    assert data["stop_reason"] == "max_tokens"
    assert data["usage"]["output_tokens"] == 2
    assert data["content"] == [{"type": "text", "text": data["content"][0]["text"]}]
