"""POST /api/inference/chat: JSON and SSE answers, validation, errors."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from tests.inference.helpers import CHAT_URL, make_token, post_chat, read_sse, user_says
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


async def records(**filters) -> list[UsageRecord]:
    return await sync_to_async(list)(UsageRecord.objects.filter(**filters).order_by("id"))


async def test_it_answers_with_the_demo_model_by_default(async_client, owner):
    token = await make_token(owner)
    response = await post_chat(async_client, token, {"messages": user_says("Tell me a story")})
    assert response.status_code == 200
    data = response.json()
    assert data["backend"] == "demo"
    assert isinstance(data["content"], str) and data["content"]
    assert data["message"] == {"role": "assistant", "content": data["content"], "tool_calls": []}
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    [record] = await records(user=owner)
    assert record.outcome == "ok"
    assert record.total_tokens == usage["total_tokens"]
    assert record.token_id == token.pk


async def test_it_streams_sse_chunks_then_stream_end(async_client, owner):
    token = await make_token(owner)
    response = await post_chat(
        async_client, token, {"messages": user_says("Tell me a story"), "stream": True}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = await read_sse(response)
    chunks = [e for e in events if e["type"] == "stream_chunk"]
    assert len(chunks) > 3
    end = events[-1]
    assert end["type"] == "stream_end"
    assert end["finish_reason"] in ("end_turn", "max_tokens")
    assert end["usage"]["completion_tokens"] > 0
    [record] = await records(user=owner)
    assert record.completion_tokens == end["usage"]["completion_tokens"]
    assert record.ttft_ms is not None


async def test_it_honours_max_tokens(async_client, owner):
    token = await make_token(owner)
    response = await post_chat(
        async_client, token, {"messages": user_says("Tell me a long story"), "max_tokens": 5}
    )
    data = response.json()
    assert data["stop_reason"] == "max_tokens"
    assert data["usage"]["completion_tokens"] == 5


async def test_it_requires_credentials(async_client, db):
    response = await async_client.post(
        CHAT_URL, data={"messages": user_says("hi")}, content_type="application/json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


async def test_it_refuses_a_wrong_token(async_client, db):
    response = await async_client.post(
        CHAT_URL,
        data={"messages": user_says("hi")},
        content_type="application/json",
        headers={"Authorization": "Bearer vgp_nope"},
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", "JSON"),
        ({"messages": "hello"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"messages": user_says("hi"), "max_tokens": "lots"}, "max_tokens"),
        ({"messages": user_says("hi"), "max_tokens": 0}, "max_tokens"),
        ({"messages": user_says("hi"), "temperature": 7}, "temperature"),
        ({"messages": [{"role": "system", "content": "only a system turn"}]}, "messages"),
    ],
)
async def test_it_rejects_bad_input_with_a_clear_message(async_client, owner, body, field):
    token = await make_token(owner)
    response = await post_chat(async_client, token, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert field in error["message"]
    assert await records(user=owner) == []


async def test_it_answers_an_unknown_model_with_404(async_client, owner):
    token = await make_token(owner)
    response = await post_chat(
        async_client, token, {"messages": user_says("hi"), "model": "no-such-model"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "MODEL_NOT_AVAILABLE"


async def test_it_refuses_an_oversized_body_with_413(async_client, owner, settings):
    settings.INFERENCE_MAX_BODY_BYTES = 2048
    token = await make_token(owner)
    response = await post_chat(async_client, token, {"messages": user_says("x" * 5000)})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_it_refuses_too_many_messages_with_413(async_client, owner, settings):
    settings.INFERENCE_MAX_MESSAGES = 3
    token = await make_token(owner)
    messages = user_says("a") + [{"role": "assistant", "content": "b"}] + user_says("c") * 2
    response = await post_chat(async_client, token, {"messages": messages})
    assert response.status_code == 413
    assert "messages" in response.json()["error"]["message"]


async def test_it_refuses_too_much_text_with_413(async_client, owner, settings):
    settings.INFERENCE_MAX_CHARS = 100
    token = await make_token(owner)
    response = await post_chat(async_client, token, {"messages": user_says("y" * 500)})
    assert response.status_code == 413


async def test_it_answers_unknown_api_paths_with_json(async_client, db):
    response = await async_client.get("/api/inference/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_it_lists_models_with_the_default(async_client, owner):
    token = await make_token(owner)
    response = await async_client.get(
        "/api/inference/models", headers={"Authorization": f"Bearer {token.secret}"}
    )
    assert response.status_code == 200
    data = response.json()
    ids = {m["id"] for m in data["models"]}
    assert {"demo", "demo-storyteller"} <= ids
    assert data["default_model"] in ids
    demo = next(m for m in data["models"] if m["id"] == "demo")
    assert demo["pricing"] == {"input_per_mtok": 0.0, "output_per_mtok": 0.0}


async def test_it_attributes_usage_to_the_game_of_a_scoped_token(async_client, owner):
    from games.models import Game

    game = await sync_to_async(Game.objects.create)(slug="scoped", title="Scoped")
    token = await make_token(owner, game=game)
    response = await post_chat(async_client, token, {"messages": user_says("hello")})
    assert response.status_code == 200
    [record] = await records(user=owner)
    assert record.game_id == game.pk


async def test_it_rejects_get_in_the_error_shape(async_client, owner):
    response = await async_client.get("/api/inference/chat")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "INVALID_REQUEST"
