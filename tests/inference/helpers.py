"""Small helpers for driving the native API in-process."""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async

from tests.factories import ApiTokenFactory

CHAT_URL = "/api/inference/chat"


async def make_token(user, **kwargs):
    return await sync_to_async(ApiTokenFactory)(owner=user, **kwargs)


def bearer(token) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.secret}"}


async def post_chat(async_client, token, body: dict[str, Any] | str, **headers):
    data = body if isinstance(body, str) else json.dumps(body)
    return await async_client.post(
        CHAT_URL, data=data, content_type="application/json", headers={**bearer(token), **headers}
    )


async def read_sse(response) -> list[dict[str, Any]]:
    """The `data:` objects of an SSE response, in order."""
    raw = b""
    async for part in response.streaming_content:
        raw += part
    events = []
    for frame in raw.decode().split("\n\n"):
        for line in frame.splitlines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    return events


def user_says(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]
