"""The Ollama-compatible API at /api/inference/ollama/ (PROTOCOLS.md §2).

`ollama.Client(host=ROOT, headers={"Authorization": "Bearer " + TOKEN})` works
unchanged: `chat` (NDJSON stream, the default, or one JSON object), `list`
(`api/tags`), and the probes tools make (`GET /`, `api/version`). Any model
the platform serves can be asked for here, Claude included.

Translators are pure: `chat_request_from` (body → `ChatRequest`),
`OllamaChat` (events and result → chunks and the final object) and the
`{"error": "..."}` body.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
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
    retry_headers,
    run_start,
    served_models,
    stop_list,
    tool_name,
)
from inference.errors import ApiError, InvalidRequest
from inference.rendering import quota_headers
from inference.services import ChatResult, ChatRun

# The Ollama release whose API this follows; tools read it to decide what the
# server can do (tool calling needs 0.3 or later).
OLLAMA_VERSION = "0.12.0"
MODIFIED_AT = "2025-01-01T00:00:00Z"
RUNNING = "Ollama is running"


# --- request ---------------------------------------------------------------------------


def _arguments(value: Any, where: str) -> dict[str, Any]:
    """Ollama sends tool arguments as an object; some clients send a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value or "{}")
        except ValueError:
            raise InvalidRequest(f"{where}: not valid JSON.") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: Input should be an object.")
    return value


def _tool_calls(value: Any, where: str, turn: int) -> list[ToolCall]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}: Input should be a valid list.")
    calls = []
    for j, item in enumerate(value):
        item = field_object(item, f"{where}.{j}")
        function = field_object(item.get("function"), f"{where}.{j}.function")
        call_id = item.get("id")
        calls.append(
            ToolCall(
                # Ollama's own calls often carry no id; the platform's other
                # backends pair results with calls by id, so one is made up.
                id=call_id if isinstance(call_id, str) and call_id else f"call_{turn}_{j}",
                name=tool_name(function.get("name"), f"{where}.{j}.function.name"),
                arguments=_arguments(function.get("arguments"), f"{where}.{j}.function.arguments"),
            )
        )
    return calls


def _answered_call(pending: list[ToolCall], call_id: Any, name: str | None) -> ToolCall | None:
    """The call a tool message answers: by id, else the first open call of that
    tool's name, else the first open call."""
    for match in (
        lambda c: isinstance(call_id, str) and c.id == call_id,
        lambda c: not call_id and name is not None and c.name == name,
        lambda c: not call_id and name is None,
    ):
        for call in pending:
            if match(call):
                pending.remove(call)
                return call
    return None


def _messages(body: dict[str, Any]) -> tuple[list[Message], str | None]:
    systems: list[str] = []
    messages: list[Message] = []
    pending: list[ToolCall] = []
    for i, item in enumerate(field_list(body, "messages")):
        item = field_object(item, f"messages.{i}")
        where = f"messages.{i}"
        role = item.get("role")
        role = role.lower() if isinstance(role, str) else role
        content = field_str(item, "content", where=f"{where}.") or ""
        if item.get("images"):
            raise InvalidRequest(f"{where}.images: images are not supported by this platform.")
        if role == "system":
            if content:
                systems.append(content)
        elif role == "user":
            messages.append(Message(role="user", content=content))
        elif role == "assistant":
            calls = _tool_calls(item.get("tool_calls"), f"{where}.tool_calls", i)
            pending = list(calls)
            messages.append(Message(role="assistant", content=content, tool_calls=tuple(calls)))
        elif role == "tool":
            name = field_str(item, "tool_name", where=f"{where}.") or field_str(
                item, "name", where=f"{where}."
            )
            call_id = item.get("tool_call_id")
            call = _answered_call(pending, call_id, name)
            messages.append(
                Message(
                    role="tool",
                    content=content,
                    tool_call_id=call.id
                    if call
                    else (call_id if isinstance(call_id, str) else None),
                    tool_name=name or (call.name if call else None),
                )
            )
        else:
            raise InvalidRequest(
                f"{where}.role: Input should be 'system', 'user', 'assistant' or 'tool'."
            )
    if not messages:
        raise InvalidRequest("messages: at least one user or assistant message is required.")
    return messages, "\n\n".join(systems) or None


def _tools(body: dict[str, Any]) -> list[Tool]:
    tools = []
    for i, spec in enumerate(field_list(body, "tools")):
        spec = field_object(spec, f"tools.{i}")
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


def chat_request_from(body: dict[str, Any], *, default_max_tokens: int) -> ChatRequest:
    """An Ollama `/api/chat` request as the gateway's `ChatRequest`.

    `options.num_predict` is the completion budget (Ollama's -1 and -2, "until
    the model stops" and "fill the context", take the platform's default);
    options the platform's backends have no use for are ignored, as Ollama
    ignores the ones a model does not know.
    """
    messages, system = _messages(body)
    options = body.get("options")
    options = {} if options is None else field_object(options, "options")
    predict = field_int(options, "num_predict", minimum=-2, where="options.")
    max_tokens = predict if predict is not None and predict > 0 else None
    return ChatRequest(
        model=field_str(body, "model") or "",
        messages=messages,
        system=system,
        max_tokens=max_tokens or default_max_tokens,
        temperature=field_number(options, "temperature", low=0, high=2, where="options."),
        top_p=field_number(options, "top_p", low=0, high=1, where="options."),
        stop=stop_list(options.get("stop"), "options.stop"),
        tools=_tools(body),
    )


# --- response --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timings:
    """Nanoseconds from the request to its first event and to its end."""

    first_ns: int
    total_ns: int


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def tool_call_object(call: ToolCall, index: int) -> dict[str, Any]:
    return {
        "id": call.id,
        "function": {"index": index, "name": call.name, "arguments": call.arguments},
    }


def done_reason(stop_reason: str | None) -> str:
    return "length" if stop_reason == "max_tokens" else "stop"


def metrics(result: ChatResult, timings: Timings) -> dict[str, int]:
    """The final object's counts and durations; zero-valued ones are left out,
    as Ollama leaves them out."""
    values = {
        "total_duration": timings.total_ns,
        "prompt_eval_count": result.usage.prompt_tokens
        + result.usage.cache_write_tokens
        + result.usage.cache_read_tokens,
        "prompt_eval_duration": timings.first_ns,
        "eval_count": result.usage.completion_tokens,
        "eval_duration": max(0, timings.total_ns - timings.first_ns),
    }
    return {name: value for name, value in values.items() if value}


class OllamaChat:
    """The gateway's events as `/api/chat` chunks and the final `done` object."""

    def __init__(self, *, model: str) -> None:
        self.model = model
        self.tool_calls = 0

    def chunk(self, message: dict[str, Any], *, done: bool = False) -> dict[str, Any]:
        return {
            "model": self.model,
            "created_at": _now(),
            "message": {"role": "assistant", **message},
            "done": done,
        }

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta) and event.text:
            return [self.chunk({"content": event.text})]
        if isinstance(event, ToolCallEvent):
            # Tool calls arrive whole, in a chunk of their own with empty content.
            call = tool_call_object(event.call, self.tool_calls)
            self.tool_calls += 1
            return [self.chunk({"content": "", "tool_calls": [call]})]
        return []

    def final(self, result: ChatResult, timings: Timings, *, whole: bool = False) -> dict[str, Any]:
        """The `done: true` object; `whole` (the non-stream answer) carries the reply."""
        message: dict[str, Any] = {"content": result.content if whole else ""}
        if whole and result.tool_calls:
            message["tool_calls"] = [
                tool_call_object(call, index) for index, call in enumerate(result.tool_calls)
            ]
        return {
            **self.chunk(message, done=True),
            "done_reason": done_reason(result.stop_reason),
            **metrics(result, timings),
        }


def error_body(error: ApiError) -> dict[str, str]:
    return {"error": error.message}


def ndjson(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()


# --- views -----------------------------------------------------------------------------


def error_response(error: ApiError) -> HttpResponse:
    response = JsonResponse(error_body(error), status=error.status)
    for name, value in retry_headers(error).items():
        response[name] = value
    return response


def _timings(started: int, first: int | None) -> Timings:
    now = time.monotonic_ns()
    return Timings(first_ns=(first or now) - started, total_ns=now - started)


async def _line_stream(run: ChatRun, started: int) -> AsyncIterator[bytes]:
    encoder = OllamaChat(model=run.request.model)
    first: int | None = None
    try:
        async with aclosing(run.events()) as events:
            async for event in events:
                first = first or time.monotonic_ns()
                for chunk in encoder.feed(event):
                    yield ndjson(chunk)
    except ApiError as error:
        yield ndjson(error_body(error))
        return
    yield ndjson(encoder.final(run.result, _timings(started, first)))


async def _collect(run: ChatRun, started: int) -> tuple[ChatResult, Timings]:
    first: int | None = None
    async with aclosing(run.events()) as events:
        async for _ in events:
            first = first or time.monotonic_ns()
    return run.result, _timings(started, first)


@compat_view(methods=("POST",), render_error=error_response)
async def chat(request: HttpRequest) -> HttpResponse:
    """`POST api/chat` (and the first sprint's `chat`): NDJSON unless `stream: false`."""
    started = time.monotonic_ns()
    principal, body = await authenticated_body(request)
    chat_request = chat_request_from(body, default_max_tokens=settings.INFERENCE_DEFAULT_MAX_TOKENS)
    stream = field_bool(body, "stream", True)  # Ollama streams unless told not to
    run = await run_start(principal, chat_request)
    if stream:
        response = StreamingHttpResponse(
            _line_stream(run, started), content_type="application/x-ndjson"
        )
        response["X-Accel-Buffering"] = "no"  # nginx: pass each line on at once
        return response
    result, timings = await _collect(run, started)
    response = JsonResponse(OllamaChat(model=run.request.model).final(result, timings, whole=True))
    for name, value in quota_headers(result).items():
        response[name] = value
    return response


def tags_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["id"],
        "model": row["id"],
        "modified_at": MODIFIED_AT,
        "size": 0,
        "digest": "",
        "details": {
            "parent_model": "",
            "format": "",
            "family": "",
            "families": [],
            "parameter_size": "",
            "quantization_level": "",
        },
    }


@compat_view(methods=("GET", "HEAD"), render_error=error_response)
async def tags(request: HttpRequest) -> HttpResponse:
    """`GET api/tags` (and the first sprint's `models`): every model on offer."""
    await authenticate_request(request)
    return JsonResponse({"models": [tags_entry(row) for row in await served_models()]})


@compat_view(methods=("GET", "HEAD"), render_error=error_response)
async def version(request: HttpRequest) -> HttpResponse:
    """`GET api/version`, unauthenticated as Ollama's: tools probe it first."""
    return JsonResponse({"version": OLLAMA_VERSION})


@compat_view(methods=("GET", "HEAD"), render_error=error_response)
async def root(request: HttpRequest) -> HttpResponse:
    """`GET /` and `HEAD /`: the liveness probe tools use to find an Ollama."""
    body = "" if request.method == "HEAD" else RUNNING
    return HttpResponse(body, content_type="text/plain; charset=utf-8")
