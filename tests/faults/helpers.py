"""Driving one chat request through each of the platform's native channels, and
the checks every fault test ends with: the ledger settled, nothing leaked, the
platform still answering."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from inference.backends import get_backend
from inference.services import wait_for_settlements
from tests.inference.helpers import post_chat, read_sse, user_says
from usage.models import QuotaReservation, UsageRecord, UserQuota

MODELS = {"anthropic": "claude-sonnet-5-5", "openai": "gpt-test", "ollama": "qwen3:0.6b"}
CHANNELS = ("json", "sse", "ws")


@dataclass
class Answer:
    """What the caller saw: the HTTP status (200 for a WebSocket that answered),
    the error code if the request failed, and the text chunks before it."""

    status: int
    code: str | None
    chunks: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def chat_body(backend: str, text: str = "Where am I now", **extra) -> dict[str, Any]:
    return {"model": MODELS[backend], "messages": user_says(text), **extra}


async def ask(channel: str, async_client, token, body: dict[str, Any]) -> Answer:
    """One request over `channel` (json, sse or ws), read to its end."""
    if channel == "json":
        response = await post_chat(async_client, token, body)
        data = response.json()
        if response.status_code == 200:
            return Answer(200, None, [data["content"]])
        return Answer(response.status_code, data["error"]["code"])
    if channel == "sse":
        response = await post_chat(async_client, token, {**body, "stream": True})
        if response.status_code != 200:
            # Refused before the stream began: a plain JSON error with its status.
            return Answer(response.status_code, response.json()["error"]["code"])
        assert response["Content-Type"].startswith("text/event-stream")
        events = await read_sse(response)
        chunks = [e["content"] for e in events if e["type"] == "stream_chunk"]
        last = events[-1]
        assert last["type"] in ("stream_end", "error"), events
        return Answer(200, last["error"]["code"] if last["type"] == "error" else None, chunks)
    if channel == "ws":
        return await ask_websocket(token, body)
    raise ValueError(channel)


async def ws_connect(token) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, "/ws/inference/", subprotocols=["vgp.v1", f"bearer.{token.secret}"]
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def ask_websocket(token, body: dict[str, Any], request_id: str = "r1") -> Answer:
    """One request on its own socket; afterwards the same socket must still
    answer a ping, so a failed request never takes the connection with it."""
    communicator = await ws_connect(token)
    try:
        await communicator.send_json_to({"type": "inference", "id": request_id, "request": body})
        chunks: list[str] = []
        code: str | None = None
        ended = False
        while True:
            message = await communicator.receive_json_from(timeout=10)
            kind = message["type"]
            if kind == "token_usage":
                break
            assert message.get("id") == request_id, message
            assert not ended, f"a message after the request ended: {message}"
            if kind == "stream_chunk":
                chunks.append(message["content"])
            elif kind == "error":
                code, ended = message["error"]["code"], True
            elif kind == "stream_end":
                ended = True
        assert ended
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    finally:
        await communicator.disconnect()
    return Answer(200, code, chunks)


# --- the ledger ---------------------------------------------------------------------


async def settled_records(user, *, requests: int) -> list[UsageRecord]:
    """The user's usage records, after checking the quota invariants of DESIGN.md:
    exactly one record per request that reached a backend, no reservation left
    behind, and the quota counters equal to the sum of the records."""
    await wait_for_settlements()

    def check() -> list[UsageRecord]:
        records = list(UsageRecord.objects.filter(user=user).order_by("created_at", "pk"))
        assert len(records) == requests, [(r.outcome, r.error_code) for r in records]
        assert not QuotaReservation.objects.filter(user=user).exists()
        quota = UserQuota.objects.get(user=user)
        total = sum(r.total_tokens for r in records)
        assert quota.total_used == total
        assert quota.day_used == total
        return records

    return await sync_to_async(check)()


# --- leaks ----------------------------------------------------------------------------


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def close_pools() -> None:
    """Close this event loop's pooled upstream clients, as shutdown does."""
    for name in MODELS:
        await get_backend(name).aclose()


async def assert_connections_released(upstream, before: int, *, timeout: float = 5.0) -> None:
    """Once the platform's pools close, the fake holds no more connections than
    before the test: every request's connection was closed or went back to the
    pool, none was left dangling."""
    await close_pools()
    released = await eventually(lambda: upstream.open_connections <= before, timeout)
    assert released, f"{upstream.open_connections} connections open, {before} before"


def tasks_now() -> set[asyncio.Task]:
    return {task for task in asyncio.all_tasks() if not task.done()}


async def assert_no_new_tasks(before: set[asyncio.Task], *, timeout: float = 2.0) -> None:
    """Every task started since `before` has ended (the current one aside)."""
    current = asyncio.current_task()

    def left() -> set[asyncio.Task]:
        return {t for t in tasks_now() - before if t is not current}

    await eventually(lambda: not left(), timeout)
    assert not left(), [t.get_coro() for t in left()]
