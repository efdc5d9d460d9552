"""Size bounds, malformed bodies and methods on the three compatible APIs:
each refusal in its own API's error shape, before anything reaches a backend."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from tests.inference.helpers import bearer, make_token
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = "/api/inference"
CHAT_PATHS = {
    "anthropic": f"{ROOT}/anthropic/v1/messages",
    "openai": f"{ROOT}/openai/v1/chat/completions",
    "ollama": f"{ROOT}/ollama/api/chat",
}


def chat_body(api: str, messages: list[dict]) -> dict:
    body = {"model": "demo", "messages": messages}
    if api == "anthropic":
        body["max_tokens"] = 50
    return body


def error_of(api: str, response) -> tuple[str, str]:
    """(error type, message) from each API's error shape."""
    body = response.json()
    if api == "anthropic":
        assert body["type"] == "error" and body["request_id"] == response["request-id"]
        return body["error"]["type"], body["error"]["message"]
    if api == "openai":
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert response["x-request-id"]
        return body["error"]["type"], body["error"]["message"]
    assert set(body) == {"error"} and isinstance(body["error"], str)
    return "", body["error"]


async def post(async_client, path: str, data: str | bytes, token=None, **headers):
    if token is not None:
        headers.update(bearer(token))
    return await async_client.post(
        path, data=data, content_type="application/json", headers=headers
    )


async def no_records() -> bool:
    return not await sync_to_async(UsageRecord.objects.exists)()


@pytest.mark.parametrize("api", CHAT_PATHS)
async def test_it_refuses_a_body_over_the_limit_with_413(async_client, owner, settings, api):
    settings.INFERENCE_MAX_BODY_BYTES = 2048
    token = await make_token(owner)
    data = json.dumps(chat_body(api, [{"role": "user", "content": "x" * 4096}]))
    response = await post(async_client, CHAT_PATHS[api], data, token)
    assert response.status_code == 413
    kind, message = error_of(api, response)
    assert kind == {"anthropic": "request_too_large", "openai": "invalid_request_error"}.get(
        api, ""
    )
    assert "2048" in message
    assert await no_records()


@pytest.mark.parametrize("api", CHAT_PATHS)
async def test_it_refuses_too_many_messages_with_413(async_client, owner, settings, api):
    settings.INFERENCE_MAX_MESSAGES = 2
    token = await make_token(owner)
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}] * 2
    response = await post(
        async_client, CHAT_PATHS[api], json.dumps(chat_body(api, messages)), token
    )
    assert response.status_code == 413
    assert "messages" in error_of(api, response)[1]
    assert await no_records()


@pytest.mark.parametrize("api", CHAT_PATHS)
async def test_it_refuses_too_much_text_with_413(async_client, owner, settings, api):
    settings.INFERENCE_MAX_CHARS = 100
    token = await make_token(owner)
    data = json.dumps(chat_body(api, [{"role": "user", "content": "y" * 200}]))
    response = await post(async_client, CHAT_PATHS[api], data, token)
    assert response.status_code == 413
    assert "characters" in error_of(api, response)[1]


@pytest.mark.parametrize("api", CHAT_PATHS)
@pytest.mark.parametrize("data", ["{not json", "[1, 2]", ""])
async def test_it_refuses_a_malformed_body_with_400(async_client, owner, api, data):
    token = await make_token(owner)
    response = await post(async_client, CHAT_PATHS[api], data, token)
    assert response.status_code == 400
    kind, message = error_of(api, response)
    assert kind in ("invalid_request_error", "")
    assert "JSON" in message


@pytest.mark.parametrize("api", CHAT_PATHS)
async def test_it_requires_credentials(async_client, api):
    data = json.dumps(chat_body(api, [{"role": "user", "content": "hi"}]))
    response = await post(async_client, CHAT_PATHS[api], data)
    assert response.status_code == 401
    kind, _ = error_of(api, response)
    assert kind in ("authentication_error", "invalid_request_error", "")


@pytest.mark.parametrize("api", CHAT_PATHS)
async def test_it_rejects_get(async_client, owner, api):
    token = await make_token(owner)
    response = await async_client.get(CHAT_PATHS[api], headers=bearer(token))
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    error_of(api, response)


@pytest.mark.parametrize("api", CHAT_PATHS)
async def test_it_requires_csrf_for_a_session(async_client, owner, api):
    await sync_to_async(async_client.force_login)(owner)
    data = json.dumps(chat_body(api, [{"role": "user", "content": "hi"}]))
    async_client.handler.enforce_csrf_checks = True
    response = await post(async_client, CHAT_PATHS[api], data)
    assert response.status_code == 403
    assert "CSRF" in error_of(api, response)[1]


async def test_it_accepts_x_api_key_and_any_anthropic_version(async_client, owner):
    token = await make_token(owner)
    data = json.dumps(chat_body("anthropic", [{"role": "user", "content": "hi"}]))
    for version in ("2023-06-01", "2026-10-21", "1999-01-01"):
        response = await post(
            async_client,
            CHAT_PATHS["anthropic"] + "?beta=true",
            data,
            **{"x-api-key": token.secret, "anthropic-version": version},
        )
        assert response.status_code == 200, response.content
