"""Renderings of a `ChatRun` for the native API: a JSON body or an SSE stream.

The SSE stream carries the same objects as the WebSocket protocol, without
`id`: `stream_chunk`, then `stream_end` (usage, finish reason, tool calls) or
`error`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from inference.backends.base import TextDelta
from inference.errors import ApiError
from inference.services import ChatResult, ChatRun

OnResult = Callable[[ChatResult], Awaitable[None]] | None


def tool_calls_list(result: ChatResult) -> list[dict[str, Any]]:
    return [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in result.tool_calls]


def chat_body(result: ChatResult) -> dict[str, Any]:
    """The native non-streaming reply (`data.content` is the text)."""
    return {
        "id": result.id,
        "model": result.model,
        "backend": result.backend,
        "content": result.content,
        "message": {
            "role": "assistant",
            "content": result.content,
            "tool_calls": tool_calls_list(result),
        },
        "stop_reason": result.stop_reason,
        "usage": result.usage_dict(),
        "max_tokens": result.max_tokens,
        "max_tokens_lowered": result.max_tokens_lowered,
    }


def stream_end_message(result: ChatResult) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "stream_end",
        "usage": result.usage_dict(),
        "finish_reason": result.stop_reason,
        "max_tokens": result.max_tokens,
        "max_tokens_lowered": result.max_tokens_lowered,
    }
    if result.tool_calls:
        message["tool_calls"] = tool_calls_list(result)
    if result.quota:
        message["quota"] = result.quota
    return message


def quota_headers(result: ChatResult) -> dict[str, str]:
    """Usage totals after the request, for JSON answers."""
    headers: dict[str, str] = {}
    quota = result.quota
    if quota:
        for window, key in (("today", "Today"), ("total", "Total")):
            used = quota.get("used", {}).get(window)
            remaining = quota.get("remaining", {}).get(window)
            if used is not None:
                headers[f"X-Tokens-Used-{key}"] = str(used)
            headers[f"X-Tokens-Remaining-{key}"] = (
                "unlimited" if remaining is None else str(remaining)
            )
    if result.max_tokens_lowered:
        headers["X-Max-Tokens-Lowered"] = str(result.max_tokens)
    return headers


def error_frame(error: ApiError) -> dict[str, Any]:
    return {"type": "error", **error.to_dict()}


def sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def sse_events(run: ChatRun, on_result: OnResult = None) -> AsyncIterator[bytes]:
    try:
        # aclosing: a caller who leaves mid-stream closes the upstream at once,
        # not whenever the garbage collector gets to the generator.
        async with aclosing(run.events()) as events:
            async for event in events:
                if isinstance(event, TextDelta) and event.text:
                    yield sse({"type": "stream_chunk", "content": event.text})
    except ApiError as error:
        yield sse(error_frame(error))
        return
    if on_result is not None:
        await on_result(run.result)
    yield sse(stream_end_message(run.result))


def sse_response(run: ChatRun, on_result: OnResult = None) -> StreamingHttpResponse:
    run.settle_unless_consumed()
    response = StreamingHttpResponse(sse_events(run, on_result), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


async def chat_http_response(
    run: ChatRun, *, stream: bool, on_result: OnResult = None
) -> HttpResponse:
    """SSE when `stream`, else the collected answer as JSON (errors as the error shape)."""
    if stream:
        return sse_response(run, on_result)
    try:
        async with aclosing(run.events()) as events:
            async for _ in events:
                pass
    except ApiError as error:
        return error_response(error)
    if on_result is not None:
        await on_result(run.result)
    response = JsonResponse(chat_body(run.result))
    for name, value in quota_headers(run.result).items():
        response[name] = value
    return response


def error_response(error: ApiError) -> JsonResponse:
    response = JsonResponse(error.to_dict(), status=error.status)
    for name, value in error.headers().items():
        response[name] = value
    return response
