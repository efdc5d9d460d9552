"""A fake OpenAI Chat Completions server on a real socket (PROTOCOLS.md §3).

Served under `/v1`, so SDKs are pointed at it exactly as at OpenAI:
`OpenAI(base_url=server.base_url, api_key="anything")`. It speaks the wire
format that OpenAI-compatible servers share: JSON and `data:`-only SSE ending in
`[DONE]`, the `include_usage` chunk with `choices: []`, tool calls with
JSON-string arguments, OpenAI-shaped error bodies and an `x-request-id` on every
answer.

Answers are deterministic so that tests can assert exact counts: prompt tokens
are the words of all message texts, the reply is `reply_tokens(...)` (one token
per word), a tool call costs one token per streamed argument piece.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
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

DEFAULT_MODELS = ("gpt-test-mini", "gpt-test")
# What "no max tokens" means: the model may fill its context.
CONTEXT_TOKENS = 4096
DEFAULT_REPLY_LENGTH = 12
ARGUMENT_PIECE_CHARS = 6
CREATED = 1_700_000_000

ROLES = ("developer", "system", "user", "assistant", "tool", "function")


def error_payload(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _status_error(status: int) -> dict[str, Any]:
    if status == 401:
        return error_payload(
            "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
        )
    if status == 403:
        return error_payload("You are not allowed to do this.", "invalid_request_error")
    if status == 404:
        return error_payload(
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        )
    if status == 429:
        return error_payload("Rate limit reached for requests.", "requests", "rate_limit_exceeded")
    if status >= 500:
        return error_payload(
            "The server had an error while processing your request.", "server_error"
        )
    return error_payload(f"Request failed with status {status}.", "invalid_request_error")


def message_text(content: Any) -> str:
    """The text of a message's `content`: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def arguments_for(schema: dict[str, Any]) -> dict[str, Any]:
    """Plausible arguments: a value for each required property of the schema."""
    properties = schema.get("properties") or {}
    samples = {"string": "Paris", "integer": 1, "number": 1, "boolean": True, "array": []}
    arguments: dict[str, Any] = {}
    for name in schema.get("required") or []:
        kind = (properties.get(name) or {}).get("type", "string")
        arguments[name] = samples.get(kind, {})
    return arguments


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass
class Answer:
    """What the fake model says to one request, before it is rendered."""

    pieces: list[str] = field(default_factory=list)  # content or argument pieces
    tool_call: dict[str, Any] | None = None  # {"id", "name", "arguments"}
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stop_string: str | None = None

    @property
    def text(self) -> str:
        return "" if self.tool_call else "".join(self.pieces)

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }


class FakeOpenAI(FakeUpstream):
    """OpenAI Chat Completions, `/v1/models` and `/v1/models/{id}`.

    Switches (all back to their defaults on `reset()`):
    - `models`: the models served; any other name is a 404 `model_not_found`.
    - `api_key`: when set, the only key accepted; otherwise any Bearer token.
    - `fill`: spend the whole `max_tokens` budget (finish_reason `length`).
    - `reply_length`: words in a normal reply.
    - `include_usage_even_without_option`: send the usage chunk (and
      `"usage": null` on every chunk) although the request did not ask.
    - `usage_chunk`: False ignores `stream_options`, like servers that predate it.
    - `report_stop_string`: put the matched stop string in the choice's
      `stop_reason`, as vLLM does (OpenAI itself does not say which one matched).
    - `models_answer`: when set, the body `/v1/models` answers with instead of
      the list (a broken server's).
    """

    def __init__(self) -> None:
        super().__init__()
        self._request_ids = itertools.count(1)
        self.connections_total = 0
        self.reset_options()

    def reset_options(self) -> None:
        self.models: list[str] = list(DEFAULT_MODELS)
        self.api_key: str | None = None
        self.fill = False
        self.reply_length = DEFAULT_REPLY_LENGTH
        self.include_usage_even_without_option = False
        self.usage_chunk = True
        self.report_stop_string = False
        self.models_answer: Any = None
        self.connections_total = 0

    @property
    def base_url(self) -> str:
        """What an OpenAI SDK takes as `base_url` (it includes `/v1`)."""
        return f"{self.url}/v1"

    def chat_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat completion requests received so far."""
        return [r.json() for r in list(self.requests) if r.path == "/v1/chat/completions"]

    def next_request_id(self) -> str:
        return f"req_{next(self._request_ids):032x}"

    # --- hooks of FakeUpstream ------------------------------------------------------

    def script(self, *faults: Fault) -> None:
        # OpenAI's error answers carry a request id too; SDKs expose it as
        # `err.request_id`.
        for fault in faults:
            if fault.kind == "status":
                fault.headers.setdefault("x-request-id", self.next_request_id())
        super().script(*faults)

    def counts_for_faults(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/v1/chat/completions"

    def error_body(self, status: int) -> Any:
        return _status_error(status)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Counting connections shows whether a client pools them.
        self.connections_total += 1
        await super()._serve(reader, writer)

    async def handle(self, request: Request, response: Response, fault: Fault | None) -> None:
        headers = {"x-request-id": self.next_request_id()}
        if not self._authorized(request):
            await response.send_json(
                401,
                error_payload(
                    "You didn't provide a valid API key in an Authorization header "
                    "(Authorization: Bearer YOUR_KEY).",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
                headers,
            )
            return
        path = request.path.rstrip("/")
        if request.method == "POST" and path == "/v1/chat/completions":
            await self._chat(request, response, fault, headers)
        elif request.method == "GET" and path == "/v1/models":
            if isinstance(self.models_answer, str):
                await response.send_text(200, self.models_answer, headers)
            elif self.models_answer is not None:
                await response.send_json(200, self.models_answer, headers)
            else:
                data = [self._model_object(model) for model in self.models]
                await response.send_json(200, {"object": "list", "data": data}, headers)
        elif request.method == "GET" and path.startswith("/v1/models/"):
            model = path.removeprefix("/v1/models/")
            if model in self.models:
                await response.send_json(200, self._model_object(model), headers)
            else:
                await response.send_json(404, self._model_not_found(model), headers)
        else:
            await response.send_json(
                404,
                error_payload(
                    f"Invalid URL ({request.method} {request.path})", "invalid_request_error"
                ),
                headers,
            )

    # --- chat completions -----------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        return self.api_key is None or key.strip() == self.api_key

    @staticmethod
    def _model_object(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1_686_935_002, "owned_by": "openai"}

    @staticmethod
    def _model_not_found(model: str) -> dict[str, Any]:
        return error_payload(
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        )

    async def _chat(
        self, request: Request, response: Response, fault: Fault | None, headers: dict
    ) -> None:
        try:
            try:
                body = request.json()
            except ValueError as exc:
                raise BadRequest(
                    "We could not parse the JSON body of your request. (HINT: This likely "
                    "means you aren't using your HTTP library correctly.)"
                ) from exc
            validate_chat(body)
        except BadRequest as exc:
            payload = error_payload(exc.message, "invalid_request_error", param=exc.param)
            await response.send_json(400, payload, headers)
            return
        if body["model"] not in self.models:
            await response.send_json(404, self._model_not_found(body["model"]), headers)
            return
        answer = self.answer(body)
        completion_id = f"chatcmpl-{headers['x-request-id'][-12:]}"
        if body.get("stream"):
            await self._stream(body, answer, completion_id, response, fault, headers)
            return
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if answer.tool_call else answer.text,
            "refusal": None,
            "annotations": [],
        }
        if answer.tool_call:
            message["tool_calls"] = [self._tool_call_object(answer.tool_call)]
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": answer.finish_reason,
        }
        if self.report_stop_string:
            choice["stop_reason"] = answer.stop_string
        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": body["model"],
            "choices": [choice],
            "usage": answer.usage(),
            "service_tier": "default",
            "system_fingerprint": None,
        }
        await response.send_json(200, payload, headers)

    def answer(self, body: dict[str, Any]) -> Answer:
        messages = body["messages"]
        answer = Answer(
            prompt_tokens=sum(count_words(message_text(m.get("content"))) for m in messages)
        )
        tool = self._tool_to_call(body)
        if tool is not None:
            arguments = json.dumps(arguments_for(tool.get("parameters") or {}))
            answer.pieces = [
                arguments[i : i + ARGUMENT_PIECE_CHARS]
                for i in range(0, len(arguments), ARGUMENT_PIECE_CHARS)
            ]
            answer.tool_call = {
                "id": f"call_{len(messages):04d}{tool['name'][:8]}",
                "name": tool["name"],
                "arguments": arguments,
            }
            answer.finish_reason = "tool_calls"
            answer.completion_tokens = len(answer.pieces)
            return answer

        limit = body.get("max_completion_tokens") or body.get("max_tokens") or CONTEXT_TOKENS
        tokens, cut = reply_tokens(limit, fill=self.fill, length=self.reply_length)
        stop = body.get("stop") or []
        stops = [stop] if isinstance(stop, str) else list(stop)
        answer.finish_reason = "length" if cut else "stop"
        said = ""
        for token in tokens:
            answer.completion_tokens += 1
            candidate = said + token
            hits = [(candidate.find(s), s) for s in stops if s and s in candidate]
            if hits:
                at, answer.stop_string = min(hits)
                if candidate[len(said) : at]:
                    answer.pieces.append(candidate[len(said) : at])
                answer.finish_reason = "stop"
                break
            answer.pieces.append(token)
            said = candidate
        return answer

    @staticmethod
    def _tool_to_call(body: dict[str, Any]) -> dict[str, Any] | None:
        """The tool the fake model calls: one the user's last message names, or
        the one `tool_choice` forces."""
        tools = [t["function"] for t in body.get("tools") or []]
        choice = body.get("tool_choice", "auto")
        if not tools or choice == "none":
            return None
        if isinstance(choice, dict):
            wanted = choice["function"]["name"]
            return next(t for t in tools if t["name"] == wanted)
        last = body["messages"][-1]
        if last.get("role") == "user":
            text = message_text(last.get("content"))
            for tool in tools:
                if tool["name"] in text:
                    return tool
        return tools[0] if choice == "required" else None

    @staticmethod
    def _tool_call_object(call: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }

    async def _stream(
        self,
        body: dict[str, Any],
        answer: Answer,
        completion_id: str,
        response: Response,
        fault: Fault | None,
        headers: dict,
    ) -> None:
        asked = bool((body.get("stream_options") or {}).get("include_usage"))
        with_usage = (asked and self.usage_chunk) or self.include_usage_even_without_option

        def chunk(delta: dict | None, finish: str | None = None) -> str:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": body["model"],
                "service_tier": "default",
                "system_fingerprint": None,
                "choices": [],
            }
            if delta is not None:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                if finish and self.report_stop_string:
                    choice["stop_reason"] = answer.stop_string
                payload["choices"] = [choice]
            if with_usage:
                payload["usage"] = None if delta is not None else answer.usage()
            return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"

        await response.start_stream(200, "text/event-stream; charset=utf-8", headers)
        if answer.tool_call:
            call = answer.tool_call
            first: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": ""},
                    }
                ],
                "refusal": None,
            }
        else:
            first = {"role": "assistant", "content": "", "refusal": None}
        await response.write(chunk(first))
        for sent, piece in enumerate(answer.pieces):
            if await self._fault_strikes(fault, sent, response):
                return
            if answer.tool_call:
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            else:
                delta = {"content": piece}
            await response.write(chunk(delta))
        if await self._fault_strikes(fault, len(answer.pieces), response):
            return
        await response.write(chunk({}, answer.finish_reason))
        if with_usage:
            await response.write(chunk(None))
        await response.write("data: [DONE]\n\n")
        # Counted before the last bytes go out: a client may read them and look
        # at this counter before this coroutine runs again.
        self.completed_streams += 1
        await response.end_stream()

    @staticmethod
    async def _fault_strikes(fault: Fault | None, sent: int, response: Response) -> bool:
        """Carry out a mid-stream fault once `after_chunks` pieces went out."""
        if fault is None or fault.kind not in ("mid_stream_error", "mid_stream_drop"):
            return False
        if sent < fault.after_chunks:
            return False
        if fault.kind == "mid_stream_drop":
            response.drop()
            return True
        payload = error_payload(fault.message, "server_error")
        await response.write(f"data: {json.dumps(payload)}\n\n")
        await response.end_stream()
        return True


def validate_chat(body: Any) -> None:
    """The checks OpenAI makes that a client can get wrong; raises BadRequest."""
    if not isinstance(body, dict):
        raise BadRequest("The body of your request must be a JSON object.")
    if not body.get("model"):
        raise BadRequest("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("[] is too short - 'messages'", "messages")
    pending_calls: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise BadRequest(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                "'user', 'function', 'tool', and 'developer'.",
                f"messages[{i}].role",
            )
        if role == "assistant":
            pending_calls = set()
            for j, call in enumerate(message.get("tool_calls") or []):
                arguments = (call.get("function") or {}).get("arguments")
                if not isinstance(arguments, str):
                    raise BadRequest(
                        f"Invalid type for 'messages[{i}].tool_calls[{j}].function.arguments': "
                        "expected a string.",
                        f"messages[{i}].tool_calls[{j}].function.arguments",
                    )
                pending_calls.add(call.get("id"))
        elif role == "tool" and message.get("tool_call_id") not in pending_calls:
            raise BadRequest(
                "Invalid parameter: messages with role 'tool' must be a response to a "
                "preceding message with 'tool_calls'.",
                f"messages[{i}].role",
            )
    if "max_tokens" in body and "max_completion_tokens" in body:
        raise BadRequest(
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
            "max_tokens",
        )
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise BadRequest(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, "
                f"but got {value} instead.",
                name,
            )
    for name, top in (("temperature", 2), ("top_p", 1)):
        value = body.get(name)
        if value is not None and not 0 <= value <= top:
            raise BadRequest(
                f"Invalid '{name}': expected a value between 0 and {top}, but got {value} instead.",
                name,
            )
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop
    if stops is not None and (not isinstance(stops, list) or len(stops) > 4):
        raise BadRequest("Invalid 'stop': expected a string or up to 4 strings.", "stop")
    if body.get("stream_options") is not None and not body.get("stream"):
        raise BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    tools = body.get("tools") or []
    names = set()
    for i, tool in enumerate(tools):
        if tool.get("type") != "function" or not (tool.get("function") or {}).get("name"):
            raise BadRequest(f"Missing required parameter: 'tools[{i}].function'.", f"tools[{i}]")
        names.add(tool["function"]["name"])
    choice = body.get("tool_choice")
    if choice is not None and not tools:
        raise BadRequest(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
            "are specified.",
            "tool_choice",
        )
    if isinstance(choice, dict):
        if (choice.get("function") or {}).get("name") not in names:
            raise BadRequest(
                "Tool choice 'function' not found in 'tools' parameter.", "tool_choice"
            )
    elif choice is not None and choice not in ("none", "auto", "required"):
        raise BadRequest(
            f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
            "tool_choice",
        )


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def _openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def openai_upstream(_openai_server: FakeOpenAI) -> FakeOpenAI:
    """The fake OpenAI server, back to normal behaviour with an empty log."""
    _openai_server.reset()
    return _openai_server
