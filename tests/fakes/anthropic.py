"""A fake Anthropic Messages API on a real socket (PROTOCOLS.md section 1).

It answers `POST /v1/messages` (JSON and named-event SSE), `GET /v1/models`
(paged) and `GET /v1/models/{id}` the way the real API does, so the official
`anthropic` SDK talks to it unchanged. Its answers are deterministic:

- prompt tokens (`input_tokens`) = the words of the system prompt, of every
  text block and tool result in the messages, and of every tool name;
- the reply is `reply_tokens(...)` from `tests.fakes.server`, one token a word,
  `reply_length` tokens long (12 unless changed) or all of `max_tokens` when
  `fill` is on; completion tokens = the tokens generated (a stop sequence
  ends the text before it, but its tokens count);
- a tool call costs the words of the tool's name plus the words of its
  arguments' JSON;
- `cache_read` / `cache_creation` report a cached prompt prefix of that many
  tokens on top of `input_tokens`.

Switches (all reset by `reset()`): `fill`, `reply_length`, `cache_read`,
`cache_creation`, `models` (ids, newest first), `api_key` (when set, any other
key is a 401), `ping` (send a `ping` event after `message_start`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.server import (
    FakeUpstream,
    Fault,
    Request,
    Response,
    count_words,
    reply_tokens,
)

# Newest first, as the real list is ordered.
DEFAULT_MODELS: tuple[str, ...] = (
    "claude-opus-5-5",
    "claude-sonnet-5-5",
    "claude-haiku-5-5",
    "claude-sonnet-4-5",
)

KNOWN_VERSIONS = ("2023-06-01", "2026-10-21")
# The version that refuses sampling parameters, even at their default values.
STRICT_VERSION = "2026-10-21"
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
ROLES = ("user", "assistant", "system")

ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low."),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not found."),
    409: ("conflict_error", "Conflict."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error."),
    504: ("timeout_error", "Request timed out."),
    529: ("overloaded_error", "Overloaded"),
}

# What a required property of each JSON Schema type is filled with in a tool call.
SAMPLE_ARGUMENTS: dict[str, Any] = {
    "string": "Paris",
    "number": 1,
    "integer": 1,
    "boolean": True,
    "array": [],
    "object": {},
    "null": None,
}


def error_type_for(status: int) -> tuple[str, str]:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return ERROR_TYPES[500] if status >= 500 else ERROR_TYPES[400]


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _content_texts(content: Any) -> Iterator[str]:
    """The texts of one message's content (a string or a list of blocks)."""
    if isinstance(content, str):
        yield content
        return
    for block in content or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            yield block.get("text", "")
        elif kind == "tool_result":
            yield from _content_texts(block.get("content", ""))
        elif kind == "tool_use":
            yield block.get("name", "")


def prompt_tokens(body: dict[str, Any]) -> int:
    """The fake's input token count for a request body (see the module docstring)."""
    total = sum(count_words(text) for text in _content_texts(body.get("system") or []))
    for message in body.get("messages") or []:
        total += sum(count_words(text) for text in _content_texts(message.get("content")))
    total += sum(count_words(tool.get("name", "")) for tool in body.get("tools") or [])
    return total


def sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments for a tool call: each required property with a plain sample value."""
    properties = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    for name in schema.get("required") or []:
        spec = properties.get(name) or {}
        if spec.get("enum"):
            arguments[name] = spec["enum"][0]
        else:
            kind = spec.get("type", "string")
            if isinstance(kind, list):
                kind = kind[0]
            arguments[name] = SAMPLE_ARGUMENTS.get(kind, "Paris")
    return arguments


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        # Only the user's own words: a tool result mentioning the tool must not
        # make the fake call it again, or a tool round trip would never end.
        return " ".join(
            b.get("text", "")
            for b in content or []
            if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


class FakeAnthropic(FakeUpstream):
    def __init__(self, models: list[str] | tuple[str, ...] = DEFAULT_MODELS) -> None:
        super().__init__()
        self._default_models = list(models)
        self._ids = itertools.count(1)
        self.reset_options()

    def reset_options(self) -> None:
        self.fill = False
        self.reply_length = 12
        self.cache_read = 0
        self.cache_creation = 0
        self.models: list[str] = list(self._default_models)
        self.api_key: str | None = None
        self.ping = True

    # --- ids and errors -------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):024x}"

    def error_body(self, status: int, request_id: str | None = None) -> dict[str, Any]:
        kind, message = error_type_for(status)
        return {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": request_id or self._new_id("req"),
        }

    def next_fault(self) -> Fault | None:
        fault = super().next_fault()
        if fault is None or fault.kind != "status":
            return fault
        # A copy, so a test may script one Fault object more than once; the
        # body and the header carry the same request id, as the real API's do.
        request_id = self._new_id("req")
        body = fault.body
        if body is None:
            body = self.error_body(fault.status, request_id)
        return dataclasses.replace(
            fault, body=body, headers={"request-id": request_id, **fault.headers}
        )

    def counts_for_faults(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/v1/messages"

    async def _error(
        self, response: Response, status: int, message: str | None = None, kind: str | None = None
    ) -> None:
        request_id = self._new_id("req")
        body = self.error_body(status, request_id)
        if message:
            body["error"]["message"] = message
        if kind:
            body["error"]["type"] = kind
        await response.send_json(status, body, {"request-id": request_id})

    # --- routing -----------------------------------------------------------------------

    async def handle(self, request: Request, response: Response, fault: Fault | None) -> None:
        refusal = self._check_headers(request)
        if refusal is not None:
            await self._error(response, *refusal)
            return
        path = request.path.rstrip("/")
        if request.method == "POST" and path == "/v1/messages":
            await self._messages(request, response, fault)
        elif request.method == "POST" and path == "/v1/messages/count_tokens":
            body = await self._parse_body(request, response)
            if body is not None:
                await response.send_json(200, {"input_tokens": prompt_tokens(body)})
        elif request.method == "GET" and path == "/v1/models":
            await self._list_models(request, response)
        elif request.method == "GET" and path.startswith("/v1/models/"):
            await self._get_model(path.removeprefix("/v1/models/"), response)
        else:
            await self._error(response, 404, f"{request.method} {request.path} not found")

    def _check_headers(self, request: Request) -> tuple[int, str] | None:
        key = request.headers.get("x-api-key")
        authorization = request.headers.get("authorization", "")
        if key is None and authorization.lower().startswith("bearer "):
            key = authorization[len("bearer ") :].strip()
        if not key:
            return 401, "x-api-key header is required"
        if self.api_key is not None and key != self.api_key:
            return 401, "invalid x-api-key"
        version = request.headers.get("anthropic-version")
        if version is None:
            return 400, "anthropic-version: header is required"
        if version not in KNOWN_VERSIONS:
            return 400, f"anthropic-version: unknown version {version!r}"
        return None

    async def _parse_body(self, request: Request, response: Response) -> dict[str, Any] | None:
        try:
            body = request.json()
        except ValueError:
            await self._error(
                response, 400, "There was an issue with your request body (invalid JSON)"
            )
            return None
        if not isinstance(body, dict):
            await self._error(response, 400, "The request body must be a JSON object")
            return None
        return body

    # --- models --------------------------------------------------------------------------

    def _model_object(self, model_id: str) -> dict[str, Any]:
        words = model_id.removeprefix("claude-").split("-")
        name = words[0].capitalize() + " " + ".".join(words[1:])
        return {
            "type": "model",
            "id": model_id,
            "display_name": f"Claude {name}".strip(),
            "created_at": "2026-09-01T00:00:00Z",
        }

    async def _list_models(self, request: Request, response: Response) -> None:
        try:
            limit = int(request.query.get("limit", ["20"])[0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            await self._error(response, 400, "limit: Input should be between 1 and 1000")
            return
        ids = self.models
        start, end = 0, len(ids)
        if "after_id" in request.query:
            after = request.query["after_id"][0]
            start = ids.index(after) + 1 if after in ids else len(ids)
        elif "before_id" in request.query:
            before = request.query["before_id"][0]
            end = ids.index(before) if before in ids else 0
            start = max(0, end - limit)
        page = ids[start:end][:limit]
        await response.send_json(
            200,
            {
                "data": [self._model_object(model_id) for model_id in page],
                "has_more": start + len(page) < end,
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            },
        )

    async def _get_model(self, model_id: str, response: Response) -> None:
        if model_id not in self.models:
            await self._error(response, 404, f"model: {model_id}")
            return
        await response.send_json(200, self._model_object(model_id))

    # --- messages ------------------------------------------------------------------------

    def _validate(self, request: Request, body: dict[str, Any]) -> tuple[int, str] | None:
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return 400, f"{name}: Field required"
        if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
            return 400, "max_tokens: Input should be a positive integer"
        if not isinstance(body["messages"], list) or not body["messages"]:
            return 400, "messages: at least one message is required"
        for i, message in enumerate(body["messages"]):
            # Recent API versions also take `system` turns among the messages.
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                return 400, f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'"
        if request.headers.get("anthropic-version") == STRICT_VERSION:
            for name in SAMPLING_PARAMS:
                if name in body:
                    return 400, (
                        f"{name}: Extra inputs are not permitted under anthropic-version "
                        f"{STRICT_VERSION}"
                    )
        if "temperature" in body and not 0 <= body["temperature"] <= 1:
            return 400, "temperature: Input should be less than or equal to 1"
        if body["model"] not in self.models:
            return 404, f"model: {body['model']}"
        return None

    def _chosen_tool(self, body: dict[str, Any]) -> dict[str, Any] | None:
        tools = [tool for tool in body.get("tools") or [] if "name" in tool]
        choice = body.get("tool_choice") or {"type": "auto"}
        if not tools or choice.get("type") == "none":
            return None
        if choice.get("type") == "tool":
            return next((tool for tool in tools if tool["name"] == choice.get("name")), None)
        text = _last_user_text(body["messages"])
        mentioned = next((tool for tool in tools if tool["name"] in text), None)
        if mentioned is None and choice.get("type") == "any":
            return tools[0]
        return mentioned

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The whole reply as the JSON message; the stream sends the same in pieces."""
        tool = self._chosen_tool(body)
        content: list[dict[str, Any]] = []
        stop_sequence = None
        if tool is not None:
            arguments = sample_arguments(tool.get("input_schema") or {})
            content.append(
                {
                    "type": "tool_use",
                    "id": self._new_id("toolu"),
                    "name": tool["name"],
                    "input": arguments,
                }
            )
            output_tokens = count_words(tool["name"]) + count_words(json.dumps(arguments))
            stop_reason = "tool_use"
            pieces: list[str] = []
        else:
            tokens, cut = reply_tokens(body["max_tokens"], fill=self.fill, length=self.reply_length)
            pieces, stop_sequence, output_tokens = _cut_at_stop(
                tokens, body.get("stop_sequences") or []
            )
            if stop_sequence is not None:
                stop_reason = "stop_sequence"
            else:
                stop_reason = "max_tokens" if cut else "end_turn"
            content.append({"type": "text", "text": "".join(pieces)})
        return {
            "id": self._new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                "input_tokens": prompt_tokens(body),
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": self.cache_creation,
                "cache_read_input_tokens": self.cache_read,
                "service_tier": "standard",
            },
            # Not part of the wire message: the text deltas the stream sends.
            "_pieces": pieces,
        }

    async def _messages(self, request: Request, response: Response, fault: Fault | None) -> None:
        body = await self._parse_body(request, response)
        if body is None:
            return
        refusal = self._validate(request, body)
        if refusal is not None:
            await self._error(response, *refusal)
            return
        answer = self._answer(body)
        pieces = answer.pop("_pieces")
        request_id = self._new_id("req")
        if not body.get("stream"):
            # A non-streaming request has no middle: a mid-stream error becomes
            # the overload it stands for, a mid-stream drop a dropped connection.
            if fault is not None and fault.kind == "mid_stream_error":
                await self._error(response, 529, fault.message)
            elif fault is not None and fault.kind == "mid_stream_drop":
                response.drop()
            else:
                await response.send_json(200, answer, {"request-id": request_id})
            return
        await self._stream(response, answer, pieces, fault, request_id)

    async def _stream(
        self,
        response: Response,
        answer: dict[str, Any],
        pieces: list[str],
        fault: Fault | None,
        request_id: str,
    ) -> None:
        usage = answer["usage"]
        start = {
            **answer,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage["input_tokens"],
                "output_tokens": 1,
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
                "service_tier": "standard",
            },
        }
        await response.start_stream(
            200, "text/event-stream; charset=utf-8", {"request-id": request_id}
        )
        await response.write(sse("message_start", {"type": "message_start", "message": start}))
        if self.ping:
            await response.write(sse("ping", {"type": "ping"}))
        sent = 0
        for index, block in enumerate(answer["content"]):
            if block["type"] == "text":
                opening = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
            else:
                opening = {**block, "input": {}}
                encoded = json.dumps(block["input"])
                # The real API starts with an empty piece and splits anywhere.
                parts = [""] + [encoded[i : i + 8] for i in range(0, len(encoded), 8)]
                deltas = [{"type": "input_json_delta", "partial_json": part} for part in parts]
            await response.write(
                sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": opening},
                )
            )
            for delta in deltas:
                if fault is not None and sent >= fault.after_chunks:
                    # Scripted faults other than mid_stream_* never reach `handle`.
                    await self._break_stream(response, fault)
                    return
                await response.write(
                    sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                )
                sent += 1
            await response.write(
                sse("content_block_stop", {"type": "content_block_stop", "index": index})
            )
        if fault is not None and fault.kind in ("mid_stream_error", "mid_stream_drop"):
            await self._break_stream(response, fault)
            return
        await response.write(
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": answer["stop_reason"],
                        "stop_sequence": answer["stop_sequence"],
                    },
                    # Cumulative: the final figures, not an increment.
                    "usage": {
                        "input_tokens": usage["input_tokens"],
                        "output_tokens": usage["output_tokens"],
                        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                        "cache_read_input_tokens": usage["cache_read_input_tokens"],
                    },
                },
            )
        )
        await response.write(sse("message_stop", {"type": "message_stop"}))
        # Counted before the last bytes go out: a client may read them and look
        # at this counter before this coroutine runs again.
        self.completed_streams += 1
        await response.end_stream()

    async def _break_stream(self, response: Response, fault: Fault) -> None:
        if fault.kind == "mid_stream_drop":
            response.drop()
            return
        error = {"type": "error", "error": {"type": "overloaded_error", "message": fault.message}}
        await response.write(sse("error", error))
        await response.end_stream()


def _cut_at_stop(tokens: list[str], stops: list[str]) -> tuple[list[str], str | None, int]:
    """The text pieces before the earliest stop sequence (which the API leaves
    out), the sequence, and how many tokens were generated to reach it."""
    text = ""
    for generated, token in enumerate(tokens, start=1):
        text += token
        hits = [(text.find(stop), stop) for stop in stops if stop and stop in text]
        if hits:
            position, stop = min(hits)
            kept: list[str] = []
            length = 0
            for piece in tokens[:generated]:
                if length >= position:
                    break
                kept.append(piece[: position - length])
                length += len(piece)
            return kept, stop, generated
    return tokens, None, len(tokens)


@pytest.fixture(scope="session")
def _anthropic_server() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def anthropic_upstream(_anthropic_server: FakeAnthropic) -> FakeAnthropic:
    """The fake Anthropic API, back to normal behaviour for this test."""
    _anthropic_server.reset()
    return _anthropic_server
