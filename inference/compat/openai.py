"""The OpenAI-compatible API at /api/inference/openai/ (PROTOCOLS.md §3).

`OpenAI(base_url=ROOT + "v1", api_key=TOKEN)` works unchanged: chat
completions in JSON or `data:`-only SSE (with `stream_options.include_usage`),
and the model list. Any model the platform serves can be asked for here.

Translators are pure: `chat_request_from` (body → `ChatRequest`),
`completion_body` (result → completion), `CompletionStream` (events → chunks)
and `error_body` (error → OpenAI's error shape).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from django.conf import settings
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

# Platform error code → (HTTP status, error.type, error.code), as OpenAI's API
# pairs them; other 5xx are `server_error` with the platform's code.
ERRORS: dict[str, tuple[int, str, str | None]] = {
    "INVALID_REQUEST": (400, "invalid_request_error", None),
    "UNAUTHORIZED": (401, "invalid_request_error", "invalid_api_key"),
    "FORBIDDEN": (403, "invalid_request_error", "permission_denied"),
    "NOT_FOUND": (404, "invalid_request_error", "not_found"),
    "MODEL_NOT_AVAILABLE": (404, "invalid_request_error", "model_not_found"),
    "PAYLOAD_TOO_LARGE": (413, "invalid_request_error", "request_too_large"),
    "RATE_LIMIT_EXCEEDED": (429, "requests", "rate_limit_exceeded"),
    "QUOTA_EXCEEDED": (429, "insufficient_quota", "insufficient_quota"),
}

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# "messages.0.content: …" → the field OpenAI's `param` names.
PARAM = re.compile(r"^([A-Za-z_][\w.]*):")


# --- request ---------------------------------------------------------------------------


def _content_text(content: Any, where: str) -> str:
    """A message's content: a string, null, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: Input should be a string or a list of content parts.")
    texts = []
    for j, part in enumerate(content):
        part = field_object(part, f"{where}.{j}")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{where}.{j}.text: Input should be a valid string.")
            texts.append(text)
        elif kind == "refusal":
            continue  # an earlier refusal replayed; nothing for the model to read
        else:
            raise InvalidRequest(
                f"{where}.{j}.type: {kind!r} content parts are not supported by this platform."
            )
    return "".join(texts)


def _tool_calls(value: Any, where: str, names: dict[str, str]) -> tuple[ToolCall, ...]:
    calls = []
    for j, item in enumerate(value or []):
        item = field_object(item, f"{where}.{j}")
        call_id = item.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"{where}.{j}.id: Field required.")
        function = field_object(item.get("function"), f"{where}.{j}.function")
        name = tool_name(function.get("name"), f"{where}.{j}.function.name")
        raw = function.get("arguments") or "{}"
        if not isinstance(raw, str):
            raise InvalidRequest(f"{where}.{j}.function.arguments: Input should be a JSON string.")
        try:
            arguments = json.loads(raw)
        except ValueError:
            raise InvalidRequest(f"{where}.{j}.function.arguments: not valid JSON.") from None
        if not isinstance(arguments, dict):
            raise InvalidRequest(f"{where}.{j}.function.arguments: should encode a JSON object.")
        names[call_id] = name
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return tuple(calls)


def _messages(body: dict[str, Any]) -> tuple[list[Message], str | None]:
    systems: list[str] = []
    messages: list[Message] = []
    names: dict[str, str] = {}  # tool call id → tool name, for the tool results
    for i, item in enumerate(field_list(body, "messages")):
        item = field_object(item, f"messages.{i}")
        role, where = item.get("role"), f"messages.{i}.content"
        if role in ("system", "developer"):
            if text := _content_text(item.get("content"), where):
                systems.append(text)
        elif role == "user":
            messages.append(Message(role="user", content=_content_text(item.get("content"), where)))
        elif role == "assistant":
            if not isinstance(item.get("tool_calls") or [], list):
                raise InvalidRequest(f"messages.{i}.tool_calls: Input should be a valid list.")
            calls = _tool_calls(item.get("tool_calls"), f"messages.{i}.tool_calls", names)
            text = _content_text(item.get("content"), where)
            messages.append(Message(role="assistant", content=text, tool_calls=calls))
        elif role == "tool":
            call_id = item.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"messages.{i}.tool_call_id: Field required.")
            messages.append(
                Message(
                    role="tool",
                    content=_content_text(item.get("content"), where),
                    tool_call_id=call_id,
                    tool_name=names.get(call_id),
                )
            )
        else:
            raise InvalidRequest(
                f"messages.{i}.role: Input should be 'developer', 'system', 'user', "
                "'assistant' or 'tool'."
            )
    if not messages:
        raise InvalidRequest("messages: at least one user or assistant message is required.")
    return messages, "\n\n".join(systems) or None


def _tools(body: dict[str, Any]) -> list[Tool]:
    tools = []
    for i, spec in enumerate(field_list(body, "tools")):
        spec = field_object(spec, f"tools.{i}")
        if spec.get("type", "function") != "function":
            raise InvalidRequest(f"tools.{i}.type: only 'function' tools are supported.")
        function = field_object(spec.get("function"), f"tools.{i}.function")
        tools.append(
            Tool(
                name=tool_name(function.get("name"), f"tools.{i}.function.name"),
                description=field_str(function, "description", where=f"tools.{i}.function.") or "",
                parameters=json_schema(
                    function.get("parameters"), f"tools.{i}.function.parameters"
                ),
            )
        )
    return tools


def _tool_choice(value: Any) -> str | None:
    if value is None:
        return None
    if value in ("none", "auto"):
        return value
    if value == "required":
        return "any"
    if isinstance(value, dict) and value.get("type") == "function":
        function = field_object(value.get("function"), "tool_choice.function")
        return tool_name(function.get("name"), "tool_choice.function.name")
    raise InvalidRequest(
        "tool_choice: Input should be 'none', 'auto', 'required' or a named function."
    )


def chat_request_from(body: dict[str, Any], *, default_max_tokens: int) -> ChatRequest:
    """A Chat Completions request as the gateway's `ChatRequest`.

    `developer` and `system` turns join the system prompt; `max_completion_tokens`
    wins over the older `max_tokens`; only one choice (`n` = 1) is produced.
    """
    n = field_int(body, "n")
    if n is not None and n != 1:
        raise InvalidRequest("n: only one choice (n=1) is supported.")
    messages, system = _messages(body)
    max_tokens = field_int(body, "max_completion_tokens") or field_int(body, "max_tokens")
    return ChatRequest(
        model=field_str(body, "model") or "",
        messages=messages,
        system=system,
        max_tokens=max_tokens or default_max_tokens,
        temperature=field_number(body, "temperature", low=0, high=2),
        top_p=field_number(body, "top_p", low=0, high=1),
        stop=stop_list(body.get("stop"), "stop"),
        tools=_tools(body),
        tool_choice=_tool_choice(body.get("tool_choice")),
    )


def include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    return field_bool(field_object(options, "stream_options"), "include_usage", False)


# --- response --------------------------------------------------------------------------


def completion_id(run_id: str) -> str:
    return "chatcmpl-" + run_id.removeprefix("chat_")


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "end_turn", "stop")


def usage_body(result: ChatResult) -> dict[str, Any]:
    """OpenAI's prompt count includes cached tokens, reported apart as well."""
    usage = result.usage
    return {
        "prompt_tokens": usage.prompt_tokens + usage.cache_write_tokens + usage.cache_read_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }


def tool_call_object(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }


def completion_body(result: ChatResult, *, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        # As OpenAI's: null content beside tool calls when there is no text.
        "content": result.content if result.content or not result.tool_calls else None,
        "refusal": None,
    }
    if result.tool_calls:
        message["tool_calls"] = [tool_call_object(call) for call in result.tool_calls]
    return {
        "id": completion_id(result.id),
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(result.stop_reason),
            }
        ],
        "usage": usage_body(result),
    }


class CompletionStream:
    """The gateway's events as `chat.completion.chunk`s (PROTOCOLS.md §3.3)."""

    def __init__(self, *, run_id: str, model: str, created: int, include_usage: bool) -> None:
        self.id = completion_id(run_id)
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.tool_calls = 0

    def chunk(
        self, delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = usage
        return chunk

    def start(self) -> list[dict[str, Any]]:
        return [self.chunk({"role": "assistant", "content": ""})]

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta) and event.text:
            return [self.chunk({"content": event.text})]
        if isinstance(event, ToolCallEvent):
            index, call = self.tool_calls, event.call
            self.tool_calls += 1
            opening = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            arguments = {"index": index, "function": {"arguments": call.arguments_json}}
            return [
                self.chunk({"tool_calls": [opening]}),
                self.chunk({"tool_calls": [arguments]}),
            ]
        return []

    def finish(self, result: ChatResult) -> list[dict[str, Any]]:
        chunks = [self.chunk({}, finish_reason(result.stop_reason))]
        if self.include_usage:
            chunks.append(self.chunk(None, usage=usage_body(result)))
        return chunks


def error_fields(error: ApiError) -> tuple[int, str, str | None]:
    if error.code in ERRORS:
        return ERRORS[error.code]
    if error.status >= 500:
        return error.status, "server_error", error.code.lower()
    return error.status, "invalid_request_error", error.code.lower()


def error_body(error: ApiError) -> dict[str, Any]:
    _, kind, code = error_fields(error)
    match = PARAM.match(error.message) if error.code == "INVALID_REQUEST" else None
    return {
        "error": {
            "message": error.message,
            "type": kind,
            "param": match.group(1) if match else None,
            "code": code,
        }
    }


def sse_data(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


# --- views -----------------------------------------------------------------------------


def error_response(error: ApiError) -> HttpResponse:
    status, _, _ = error_fields(error)
    response = JsonResponse(error_body(error), status=status)
    response["x-request-id"] = new_request_id()
    for name, value in retry_headers(error).items():
        response[name] = value
    return response


async def _chunk_stream(run: ChatRun, *, created: int, usage: bool) -> AsyncIterator[bytes]:
    encoder = CompletionStream(
        run_id=run.id, model=run.request.model, created=created, include_usage=usage
    )
    for chunk in encoder.start():
        yield sse_data(chunk)
    try:
        async with aclosing(run.events()) as events:
            async for event in events:
                for chunk in encoder.feed(event):
                    yield sse_data(chunk)
    except ApiError as error:
        # The SDK raises `APIError` on a payload with a top-level "error".
        yield sse_data(error_body(error))
        return
    for chunk in encoder.finish(run.result):
        yield sse_data(chunk)
    yield sse_data("[DONE]")


@compat_view(methods=("POST",), render_error=error_response)
async def chat_completions(request: HttpRequest) -> HttpResponse:
    """`POST v1/chat/completions`: JSON, or SSE with `stream: true`."""
    principal, body = await authenticated_body(request)
    chat_request = chat_request_from(body, default_max_tokens=settings.INFERENCE_DEFAULT_MAX_TOKENS)
    stream = field_bool(body, "stream", False)
    usage = include_usage(body)
    run = await run_start(principal, chat_request)
    created = int(time.time())
    if stream:
        response = StreamingHttpResponse(
            _chunk_stream(run, created=created, usage=usage), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each chunk on at once
    else:
        result = await run_collect(run)
        response = JsonResponse(completion_body(result, created=created))
        for name, value in quota_headers(result).items():
            response[name] = value
    response["x-request-id"] = new_request_id()
    return response


def model_object(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "object": "model", "created": 0, "owned_by": row["backend"]}


@compat_view(methods=("GET",), render_error=error_response)
async def models(request: HttpRequest) -> HttpResponse:
    """`GET v1/models`."""
    await authenticate_request(request)
    rows = await served_models()
    response = JsonResponse({"object": "list", "data": [model_object(row) for row in rows]})
    response["x-request-id"] = new_request_id()
    return response


@compat_view(methods=("GET",), render_error=error_response)
async def model(request: HttpRequest, model_id: str) -> HttpResponse:
    """`GET v1/models/{id}`."""
    await authenticate_request(request)
    for row in await served_models():
        if row["id"] == model_id:
            response = JsonResponse(model_object(row))
            response["x-request-id"] = new_request_id()
            return response
    raise ModelNotAvailable(f"The model {model_id!r} does not exist or is not served here.")
