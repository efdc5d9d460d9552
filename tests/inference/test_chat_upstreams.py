"""The gateway through each real backend against its fake upstream: answers,
exact usage, error codes, retries, timeouts and callers that go away."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.core.asgi import get_asgi_application

from tests.fakes.server import Fault
from tests.inference.helpers import make_token, post_chat, read_sse, user_says
from tests.live import free_port
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = {"anthropic": "claude-sonnet-5-5", "openai": "gpt-test", "ollama": "qwen3:0.6b"}


async def only_record(user) -> UsageRecord:
    return await sync_to_async(UsageRecord.objects.get)(user=user)


@pytest.mark.parametrize("backend", MODELS)
async def test_it_answers_through_each_backend_with_exact_usage(
    async_client, owner, upstreams, backend
):
    token = await make_token(owner)
    body = {"model": MODELS[backend], "messages": user_says("Where am I now")}
    response = await post_chat(async_client, token, body)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["backend"] == backend
    assert data["content"].startswith("The torch flickers")
    assert data["usage"]["completion_tokens"] == 12
    assert data["usage"]["estimated"] is False
    record = await only_record(owner)
    assert (record.backend, record.model, record.outcome) == (backend, MODELS[backend], "ok")
    assert record.completion_tokens == 12
    assert record.total_tokens == data["usage"]["total_tokens"]


@pytest.mark.parametrize("backend", MODELS)
async def test_it_streams_through_each_backend(async_client, owner, upstreams, backend):
    token = await make_token(owner)
    body = {"model": MODELS[backend], "messages": user_says("Look around"), "stream": True}
    events = await read_sse(await post_chat(async_client, token, body))
    text = "".join(e["content"] for e in events if e["type"] == "stream_chunk")
    assert text.startswith("The torch flickers")
    assert events[-1]["type"] == "stream_end"
    assert events[-1]["usage"]["completion_tokens"] == 12
    record = await only_record(owner)
    assert record.completion_tokens == 12 and record.outcome == "ok"


async def test_it_passes_tool_calls_through(async_client, owner, upstreams):
    token = await make_token(owner)
    tool = {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
    body = {
        "model": MODELS["anthropic"],
        "messages": user_says("Use get_weather for Paris"),
        "tools": [tool],
    }
    data = (await post_chat(async_client, token, body)).json()
    assert data["stop_reason"] == "tool_use"
    [call] = data["message"]["tool_calls"]
    assert call["name"] == "get_weather"
    assert call["arguments"] == {"city": "Paris"}


async def test_it_retries_an_overloaded_upstream_then_answers(async_client, owner, upstreams):
    upstreams.anthropic.script(
        Fault.with_status(529, headers={"retry-after-ms": "10"}),
        Fault.with_status(500),
    )
    token = await make_token(owner)
    response = await post_chat(
        async_client, token, {"model": MODELS["anthropic"], "messages": user_says("hi")}
    )
    assert response.status_code == 200
    chat_calls = [r for r in upstreams.anthropic.requests if r.path == "/v1/messages"]
    assert len(chat_calls) == 3
    assert (await only_record(owner)).outcome == "ok"


async def test_it_gives_up_after_the_retries(async_client, owner, upstreams):
    upstreams.openai.script(*[Fault.with_status(503)] * 5)
    token = await make_token(owner)
    response = await post_chat(
        async_client, token, {"model": MODELS["openai"], "messages": user_says("hi")}
    )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "UPSTREAM_ERROR"
    assert len(upstreams.openai.chat_bodies()) == 3
    record = await only_record(owner)
    assert (record.outcome, record.error_code, record.total_tokens) == (
        "error",
        "UPSTREAM_ERROR",
        0,
    )


async def test_it_does_not_retry_after_the_first_byte(async_client, owner, upstreams):
    upstreams.anthropic.script(Fault.mid_stream_error(after_chunks=3))
    token = await make_token(owner)
    body = {"model": MODELS["anthropic"], "messages": user_says("hi"), "stream": True}
    events = await read_sse(await post_chat(async_client, token, body))
    assert [e["type"] for e in events[:3]] == ["stream_chunk"] * 3
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["code"] == "UPSTREAM_ERROR"
    assert len([r for r in upstreams.anthropic.requests if r.path == "/v1/messages"]) == 1
    record = await only_record(owner)
    assert record.outcome == "error"
    assert record.completion_tokens > 0  # what was streamed is still counted


@pytest.mark.parametrize(
    ("status", "code", "http"),
    [
        (400, "INVALID_REQUEST", 400),
        (401, "UPSTREAM_ERROR", 502),
        (404, "MODEL_NOT_AVAILABLE", 404),
    ],
)
async def test_it_maps_upstream_errors_to_named_codes(
    async_client, owner, upstreams, status, code, http
):
    upstreams.anthropic.script(Fault.with_status(status))
    token = await make_token(owner)
    response = await post_chat(
        async_client, token, {"model": MODELS["anthropic"], "messages": user_says("hi")}
    )
    assert response.status_code == http
    assert response.json()["error"]["code"] == code


async def test_it_reports_an_unreachable_upstream(async_client, owner, upstreams, settings):
    settings.ANTHROPIC_BASE_URL = f"http://127.0.0.1:{free_port()}"
    token = await make_token(owner)
    response = await post_chat(
        async_client, token, {"model": MODELS["anthropic"], "messages": user_says("hi")}
    )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "CONNECTION_FAILED"


async def test_it_times_out_a_hanging_upstream(async_client, owner, upstreams, settings):
    settings.INFERENCE_TIMEOUT_S = 0.5
    settings.INFERENCE_MAX_RETRIES = 0
    upstreams.openai.script(Fault.hang(5))
    token = await make_token(owner)
    response = await post_chat(
        async_client, token, {"model": MODELS["openai"], "messages": user_says("hi")}
    )
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "INFERENCE_TIMEOUT"


async def test_it_closes_the_upstream_when_the_caller_disconnects(owner, upstreams):
    upstreams.anthropic.reply_length = 400
    upstreams.anthropic.token_delay = 0.02
    token = await make_token(owner)
    body = json.dumps(
        {"model": MODELS["anthropic"], "messages": user_says("Talk"), "stream": True}
    ).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/inference/chat",
        "raw_path": b"/api/inference/chat",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token.secret}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    gone = asyncio.Event()
    body_sent = False
    chunks: list[bytes] = []

    async def receive():
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])
            if len(chunks) >= 3:
                gone.set()

    await asyncio.wait_for(get_asgi_application()(scope, receive, send), 10)
    for _ in range(50):
        if upstreams.anthropic.aborted_streams or upstreams.anthropic.open_connections == 0:
            break
        await asyncio.sleep(0.05)
    record = await only_record(owner)
    assert record.outcome == "cancelled"
    assert 0 < record.completion_tokens < 400
    # The prompt's count is the upstream's own (sent before the cut); only the
    # completion so far is estimated.
    assert record.prompt_tokens == 1
    assert record.estimated is True
    assert upstreams.anthropic.completed_streams == 0
