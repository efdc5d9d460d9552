"""The Anthropic-compatible API at /api/inference/anthropic/ (PROTOCOLS.md §1).

`Anthropic(base_url=ROOT, api_key=TOKEN)` works unchanged: the SDK sends the
platform token as `Authorization: Bearer` (2.x) or `x-api-key` (0.x/1.x), and
any `anthropic-version`. Any model the platform serves can be asked for here.

Translators are pure: `chat_request_from` (body → `ChatRequest`),
`message_body` (result → message), `MessageStream` (events → named SSE events)
and `error_body` (error → Anthropic's error shape).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from accounts.auth import authenticate_request
from inference.backends.base import (
    ChatRequest,
    Event,
    Message,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallEvent,
)
from inference.compat.common import (
    authenticated_body,
    compat_view,
    field_bool,
    field_int,
    field_list,
    field_number,
    field_object,
    field_str,
    json_schema,
    new_request_id,
    retry_headers,
    run_collect,
    run_start,
    served_models,
    stop_list,
    tool_name,
)
from inference.errors import ApiError, InvalidRequest, ModelNotAvailable
from inference.rendering import quota_headers
from inference.services import ChatResult, ChatRun

# Platform error code → (HTTP status, Anthropic error.type). 503 rather than
# 529 for "no backend": nothing is overloaded, something is missing.
ERRORS: dict[str, tuple[int, str]] = {
    "INVALID_REQUEST": (400, "invalid_request_error"),
    "UNAUTHORIZED": (401, "authentication_error"),
    "FORBIDDEN": (403, "permission_error"),
    "NOT_FOUND": (404, "not_found_error"),
    "MODEL_NOT_AVAILABLE": (404, "not_found_error"),
    "PAYLOAD_TOO_LARGE": (413, "request_too_large"),
    "RATE_LIMIT_EXCEEDED": (429, "rate_limit_error"),
    "QUOTA_EXCEEDED": (429, "rate_limit_error"),
    "CONNECTION_FAILED": (502, "api_error"),
    "UPSTREAM_ERROR": (502, "api_error"),
    "NO_BACKEND_AVAILABLE": (503, "api_error"),
    "INFERENCE_TIMEOUT": (504, "timeout_error"),
}

# Blocks a model replays from its own earlier turns that carry nothing the
# platform's backends can pass on.
SKIPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
MODEL_CREATED_AT = "2025-01-01T00:00:00Z"


# --- request ---------------------------------------------------------------------------


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: Input should be a string or a list of content blocks.")
    blocks = []
    for j, block in enumerate(content):
        block = field_object(block, f"{where}.{j}")
        if not isinstance(block.get("type"), str):
            raise InvalidRequest(f"{where}.{j}.type: Field required.")
        blocks.append(block)
    return blocks


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text: Input should be a valid string.")
    return text


def _unsupported(kind: str, where: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {kind!r} content blocks are not supported by this platform.")


def _result_text(content: Any, where: str) -> str:
    """A tool_result's content: a string or text blocks."""
    if content is None:
        return ""
    texts = []
    for j, block in enumerate(_blocks(content, where)):
        if block["type"] != "text":
            raise _unsupported(block["type"], f"{where}.{j}")
        texts.append(_text(block, f"{where}.{j}"))
    return "\n".join(texts)


def _system(value: Any) -> list[str]:
    if value is None:
        return []
    texts = []
    for j, block in enumerate(_blocks(value, "system")):
        if block["type"] != "text":
            raise InvalidRequest(f"system.{j}.type: only text blocks are allowed in system.")
        texts.append(_text(block, f"system.{j}"))
    return [text for text in texts if text]


def _user_turn(blocks: list[dict[str, Any]], where: str, names: dict[str, str]) -> list[Message]:
    """Tool results become `tool` messages; the text, a user message after them."""
    texts: list[str] = []
    results: list[Message] = []
    for j, block in enumerate(blocks):
        kind, here = block["type"], f"{where}.{j}"
        if kind == "text":
            texts.append(_text(block, here))
        elif kind == "tool_result":
            call_id = block.get("tool_use_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"{here}.tool_use_id: Field required.")
            results.append(
                Message(
                    role="tool",
                    content=_result_text(block.get("content"), f"{here}.content"),
                    tool_call_id=call_id,
                    tool_name=names.get(call_id),
                    is_error=block.get("is_error") is True,
                )
            )
        elif kind not in SKIPPED_BLOCKS:
            raise _unsupported(kind, here)
    if texts or not results:
        results.append(Message(role="user", content="\n".join(texts)))
    return results


def _assistant_turn(blocks: list[dict[str, Any]], where: str, names: dict[str, str]) -> Message:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for j, block in enumerate(blocks):
        kind, here = block["type"], f"{where}.{j}"
        if kind == "text":
            texts.append(_text(block, here))
        elif kind == "tool_use":
            call_id = block.get("id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"{here}.id: Field required.")
            name = tool_name(block.get("name"), f"{here}.name")
            arguments = block.get("input", {})
            if not isinstance(arguments, dict):
                raise InvalidRequest(f"{here}.input: Input should be an object.")
            names[call_id] = name
            calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
        elif kind not in SKIPPED_BLOCKS:
            raise _unsupported(kind, here)
    return Message(role="assistant", content="\n".join(texts), tool_calls=tuple(calls))


def _tools(body: dict[str, Any]) -> list[Tool]:
    tools = []
    for i, spec in enumerate(field_list(body, "tools")):
        spec = field_object(spec, f"tools.{i}")
        if spec.get("type") not in (None, "custom"):
            raise InvalidRequest(
                f"tools.{i}.type: server tools ({spec['type']!r}) are not supported by this "
                "platform; define the tool with name, description and input_schema."
            )
        description = field_str(spec, "description", where=f"tools.{i}.") or ""
        tools.append(
            Tool(
                name=tool_name(spec.get("name"), f"tools.{i}.name"),
                description=description,
                parameters=json_schema(spec.get("input_schema"), f"tools.{i}.input_schema"),
            )
        )
    return tools


def _tool_choice(value: Any) -> str | None:
    if value is None:
        return None
    choice = field_object(value, "tool_choice")
    kind = choice.get("type")
    if kind in ("auto", "any", "none"):
        return kind
    if kind == "tool":
        return tool_name(choice.get("name"), "tool_choice.name")
    raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'.")


def chat_request_from(body: dict[str, Any]) -> ChatRequest:
    """An Anthropic Messages request as the gateway's `ChatRequest`.

    `max_tokens` is required, as on Anthropic's API; `model` may be left out for
    the platform's default. System turns (in `system` or, as recent SDK types
    allow, in `messages`) join the system prompt.
    """
    max_tokens = field_int(body, "max_tokens")
    if max_tokens is None:
        raise InvalidRequest("max_tokens: Field required.")
    messages_in = field_list(body, "messages")
    if not messages_in:
        raise InvalidRequest("messages: at least one message is required.")
    systems = _system(body.get("system"))
    names: dict[str, str] = {}  # tool_use id → tool name, for the tool results
    messages: list[Message] = []
    for i, item in enumerate(messages_in):
        item = field_object(item, f"messages.{i}")
        role, where = item.get("role"), f"messages.{i}.content"
        if "content" not in item:
            raise InvalidRequest(f"{where}: Field required.")
        blocks = _blocks(item["content"], where)
        if role == "user":
            messages.extend(_user_turn(blocks, where, names))
        elif role == "assistant":
            messages.append(_assistant_turn(blocks, where, names))
        elif role == "system":
            systems.extend(_system(item["content"]))
        else:
            raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'.")
    if not messages:
        raise InvalidRequest("messages: at least one user or assistant message is required.")
    return ChatRequest(
        model=field_str(body, "model") or "",
        messages=messages,
        system="\n\n".join(systems) or None,
        max_tokens=max_tokens,
        temperature=field_number(body, "temperature", low=0, high=1),
        top_p=field_number(body, "top_p", low=0, high=1),
        stop=stop_list(body.get("stop_sequences"), "stop_sequences", one_string=False),
        tools=_tools(body),
        tool_choice=_tool_choice(body.get("tool_choice")),
    )


# --- response --------------------------------------------------------------------------


def message_id(run_id: str) -> str:
    return "msg_" + run_id.removeprefix("chat_")


def usage_body(result: ChatResult) -> dict[str, int]:
    return {
        "input_tokens": result.usage.prompt_tokens,
        "output_tokens": result.usage.completion_tokens,
        "cache_creation_input_tokens": result.usage.cache_write_tokens,
        "cache_read_input_tokens": result.usage.cache_read_tokens,
    }


def tool_use_block(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}


def message_body(result: ChatResult) -> dict[str, Any]:
    """The non-streaming Messages answer. A reply with no tool calls always has
    its text block, so `message.content[0].text` works even when it is empty."""
    content: list[dict[str, Any]] = []
    if result.content or not result.tool_calls:
        content.append({"type": "text", "text": result.content})
    content.extend(tool_use_block(call) for call in result.tool_calls)
    return {
        "id": message_id(result.id),
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": content,
        "stop_reason": result.stop_reason or "end_turn",
        "stop_sequence": result.stop_sequence,
        "usage": usage_body(result),
    }


class MessageStream:
    """The gateway's events as Anthropic's stream events (PROTOCOLS.md §1.3):
    `message_start`, a start/delta/stop triple per content block, then the
    cumulative `message_delta` and `message_stop`."""

    def __init__(self, *, run_id: str, model: str) -> None:
        self.run_id = run_id
        self.model = model
        self.blocks = 0
        self.text_open = False

    def start(self) -> list[dict[str, Any]]:
        # The prompt count is the upstream's, known only at the end: the SDK
        # takes the figures of the final message_delta.
        message = {
            "id": message_id(self.run_id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        return [{"type": "message_start", "message": message}]

    def _close_text(self) -> list[dict[str, Any]]:
        if not self.text_open:
            return []
        self.text_open = False
        self.blocks += 1
        return [{"type": "content_block_stop", "index": self.blocks - 1}]

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta) and event.text:
            frames = []
            if not self.text_open:
                self.text_open = True
                frames.append(
                    {
                        "type": "content_block_start",
                        "index": self.blocks,
                        "content_block": {"type": "text", "text": ""},
                    }
                )
            delta = {"type": "text_delta", "text": event.text}
            frames.append({"type": "content_block_delta", "index": self.blocks, "delta": delta})
            return frames
        if isinstance(event, ToolCallEvent):
            frames = self._close_text()
            index, call = self.blocks, event.call
            self.blocks += 1
            block = {**tool_use_block(call), "input": {}}
            delta = {"type": "input_json_delta", "partial_json": call.arguments_json}
            return [
                *frames,
                {"type": "content_block_start", "index": index, "content_block": block},
                {"type": "content_block_delta", "index": index, "delta": delta},
                {"type": "content_block_stop", "index": index},
            ]
        return []  # usage and the stop come with the finish, from the settled result

    def finish(self, result: ChatResult) -> list[dict[str, Any]]:
        frames = self._close_text()
        if self.blocks == 0:
            # As in the JSON answer: an empty reply still has its text block.
            frames += [
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                {"type": "content_block_stop", "index": 0},
            ]
            self.blocks = 1
        delta = {
            "stop_reason": result.stop_reason or "end_turn",
            "stop_sequence": result.stop_sequence,
        }
        frames.append({"type": "message_delta", "delta": delta, "usage": usage_body(result)})
        frames.append({"type": "message_stop"})
        return frames


def error_status_and_type(error: ApiError) -> tuple[int, str]:
    if error.code in ERRORS:
        return ERRORS[error.code]
    return error.status, "api_error" if error.status >= 500 else "invalid_request_error"


def error_body(error: ApiError, request_id: str) -> dict[str, Any]:
    """Anthropic's error shape; `details.error_code` tells a quota refusal from
    a rate limit (SDK 2.x: `err.error_code`)."""
    _, kind = error_status_and_type(error)
    return {
        "type": "error",
        "error": {
            "type": kind,
            "message": error.message,
            "details": {"error_code": error.code.lower()},
        },
        "request_id": request_id,
    }


def sse_frame(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


# --- views -----------------------------------------------------------------------------


def error_response(error: ApiError) -> HttpResponse:
    request_id = new_request_id()
    status, _ = error_status_and_type(error)
    response = JsonResponse(error_body(error, request_id), status=status)
    response["request-id"] = request_id
    for name, value in retry_headers(error).items():
        response[name] = value
    return response


async def _event_stream(run: ChatRun, request_id: str) -> AsyncIterator[bytes]:
    encoder = MessageStream(run_id=run.id, model=run.request.model)
    for frame in encoder.start():
        yield sse_frame(frame)
    try:
        async with aclosing(run.events()) as events:
            async for event in events:
                for frame in encoder.feed(event):
                    yield sse_frame(frame)
    except ApiError as error:
        yield sse_frame(error_body(error, request_id))
        return
    for frame in encoder.finish(run.result):
        yield sse_frame(frame)


@compat_view(methods=("POST",), render_error=error_response)
async def messages(request: HttpRequest) -> HttpResponse:
    """`POST v1/messages` (and the first sprint's `messages`): JSON or SSE."""
    principal, body = await authenticated_body(request)
    chat_request = chat_request_from(body)
    stream = field_bool(body, "stream", False)
    run = await run_start(principal, chat_request)
    request_id = new_request_id()
    if stream:
        response = StreamingHttpResponse(
            _event_stream(run, request_id), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    else:
        result = await run_collect(run)
        response = JsonResponse(message_body(result))
        for name, value in quota_headers(result).items():
            response[name] = value
    response["request-id"] = request_id
    return response


def model_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "model",
        "id": row["id"],
        "display_name": row["id"],
        "created_at": MODEL_CREATED_AT,
    }


def models_page(
    rows: list[dict[str, Any]], *, limit: int, after_id: str | None, before_id: str | None
) -> dict[str, Any]:
    """One page of the model list, paged by id as Anthropic's is."""
    ids = [row["id"] for row in rows]
    start, end = 0, len(rows)
    if after_id is not None:
        start = ids.index(after_id) + 1 if after_id in ids else len(rows)
    elif before_id is not None:
        end = ids.index(before_id) if before_id in ids else 0
        start = max(0, end - limit)
    page = rows[start:end][:limit]
    return {
        "data": [model_object(row) for row in page],
        "has_more": start + len(page) < end,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


@compat_view(methods=("GET",), render_error=error_response)
async def models(request: HttpRequest) -> HttpResponse:
    """`GET v1/models?limit=&after_id=&before_id=`."""
    await authenticate_request(request)
    raw_limit = request.GET.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        raise InvalidRequest("limit: Input should be between 1 and 1000.")
    page = models_page(
        await served_models(),
        limit=int(raw_limit),
        after_id=request.GET.get("after_id"),
        before_id=request.GET.get("before_id"),
    )
    response = JsonResponse(page)
    response["request-id"] = new_request_id()
    return response


@compat_view(methods=("GET",), render_error=error_response)
async def model(request: HttpRequest, model_id: str) -> HttpResponse:
    """`GET v1/models/{id}`."""
    await authenticate_request(request)
    for row in await served_models():
        if row["id"] == model_id:
            response = JsonResponse(model_object(row))
            response["request-id"] = new_request_id()
            return response
    raise ModelNotAvailable(f"model: {model_id}")
