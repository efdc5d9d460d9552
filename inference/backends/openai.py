"""The OpenAI-compatible backend: OpenAI itself, Groq, vLLM, llama.cpp server…

Built on the official `openai` SDK's `AsyncOpenAI` over its aiohttp transport,
one pooled client per event loop. Every answer is streamed upstream with
`include_usage`, so that the usage record holds the server's own counts; a
server that ignores the option gets an estimate, and the record says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import openai
from django.conf import settings

from inference.backends.base import (
    Backend,
    ChatRequest,
    Event,
    Message,
    ModelInfo,
    PerLoopClient,
    Stop,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallEvent,
    Usage,
    retry_after,
)
from inference.errors import (
    ApiError,
    ConnectionFailed,
    InferenceTimeout,
    InvalidRequest,
    ModelNotAvailable,
    UpstreamError,
    UpstreamFailure,
)

MODELS_CACHE_S = 60.0
# After a failed model listing, routing asks again only after this long, so a
# server that is down does not cost a connect timeout on every request.
MODELS_RETRY_S = 5.0
HEALTH_TIMEOUT_S = 3.0
# What a key-less client sends: local servers ignore it, the SDK insists on one.
NO_KEY = "none"

FINISH_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def uses_openai_itself(base_url: str | None) -> bool:
    return base_url is None or urlsplit(base_url).hostname == "api.openai.com"


def token_limit_field(base_url: str | None) -> str:
    """The body field that carries `max_tokens`.

    OpenAI's reasoning models refuse the deprecated `max_tokens`, so OpenAI gets
    `max_completion_tokens`. Compatible servers (llama.cpp, older vLLM and Ollama
    releases) may know only `max_tokens` and would silently ignore the other, so
    they get the field every one of them understands.
    """
    return "max_completion_tokens" if uses_openai_itself(base_url) else "max_tokens"


def _upstream_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return exc.message


# What a failed call through the SDK raises: the SDK's own errors, and the
# aiohttp errors its aiohttp transport has no mapping for (a reply that is not
# HTTP at all), which pass through the SDK as they are.
SDK_ERRORS = (openai.APIError, aiohttp.ClientError)


def _timed_out(exc: openai.APITimeoutError) -> bool:
    """Whether a reported timeout is one.

    The SDK's aiohttp transport (httpx-aiohttp 0.2.0, as vendored by `openai`)
    maps every aiohttp connection error, a refused connection or a socket
    closed before the answer included, to `httpx2.ConnectTimeout`, which the SDK
    reports as `APITimeoutError`. The aiohttp error underneath tells: only its
    timeouts are `TimeoutError`s.
    """
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientError):
            return isinstance(cause, TimeoutError)
        cause = cause.__cause__
    return True


def map_error(exc: openai.APIError | aiohttp.ClientError, *, started: bool = False) -> ApiError:
    """The platform error for an SDK (or transport) error. `started`: the answer
    had begun."""
    if isinstance(exc, openai.APITimeoutError) and _timed_out(exc):
        return InferenceTimeout()
    if isinstance(exc, openai.APIConnectionError | aiohttp.ClientError):
        if started:
            return UpstreamError("The model server broke off the answer.", retryable=True)
        return ConnectionFailed()
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _upstream_message(exc)
        details = {"upstream_status": status}
        if exc.request_id:
            details["upstream_request_id"] = exc.request_id
        if status == 429 or status >= 500 or status in (408, 409):
            return UpstreamError(
                f"The model server is busy or failing ({status}): {message}",
                retryable=True,
                retry_after=retry_after(exc.response.headers),
                details=details,
            )
        if status == 404 and (exc.code == "model_not_found" or "model" in message.lower()):
            return ModelNotAvailable(message)
        if status in (400, 413, 422):
            return InvalidRequest(message)
        if status in (401, 403):
            # The key is the platform's, not the caller's: an operator must act.
            return UpstreamError(
                f"The model server refused the platform's credentials ({status}).",
                retryable=False,
                details=details,
            )
        return UpstreamError(
            f"The model server answered {status}: {message}", retryable=False, details=details
        )
    # An error payload inside a 200 stream, or an answer the SDK could not read.
    transient = exc.type in (None, "server_error", "api_error", "overloaded_error")
    return UpstreamError(f"The model server reported an error: {exc.message}", retryable=transient)


def _message_payload(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        content = message.content
        if message.is_error and not content.lower().startswith("error"):
            # OpenAI has no error flag on tool results; say it in the text.
            content = f"Error: {content}"
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": content}
    payload: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        payload["content"] = message.content or None
        payload["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in message.tool_calls
        ]
    return payload


def _tool_payload(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice_payload(choice: str) -> Any:
    if choice == "any":
        return "required"
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def estimate_tokens(text: str) -> int:
    """About four characters a token: close enough for English and for quotas."""
    return (len(text) + 3) // 4


def _field(raw: Any, name: str) -> Any:
    """`raw[name]` of a JSON object, or the attribute of an object like it."""
    if isinstance(raw, dict):
        return raw.get(name)
    return getattr(raw, name, None)


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAIBackend(Backend):
    """Any server that speaks OpenAI Chat Completions.

    Arguments left out come from settings: `OPENAI_BASE_URL` (including `/v1`),
    `OPENAI_API_KEY`, `OPENAI_DEFAULT_MODEL`, `INFERENCE_TIMEOUT_S` and
    `INFERENCE_CONNECT_TIMEOUT_S`.
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        default_model: str | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        models_cache_s: float = MODELS_CACHE_S,
    ) -> None:
        self.base_url = base_url or settings.OPENAI_BASE_URL or None
        self.api_key = api_key or settings.OPENAI_API_KEY or NO_KEY
        self._default_model = default_model or settings.OPENAI_DEFAULT_MODEL or ""
        self.timeout = timeout if timeout is not None else settings.INFERENCE_TIMEOUT_S
        self.connect_timeout = (
            connect_timeout if connect_timeout is not None else settings.INFERENCE_CONNECT_TIMEOUT_S
        )
        self.models_cache_s = models_cache_s
        self._clients = PerLoopClient(self._new_client)
        self._models: list[ModelInfo] | None = None
        self._models_at = 0.0
        self._models_failed_at: float | None = None

    # --- the client ----------------------------------------------------------------

    def _new_client(self) -> openai.AsyncOpenAI:
        timeout = openai.Timeout(self.timeout, connect=min(self.connect_timeout, self.timeout))
        return openai.AsyncOpenAI(
            api_key=self.api_key,
            base_url=self.base_url,
            # The platform retries (before the first token only) and fails over
            # itself; SDK retries underneath would multiply its attempts.
            max_retries=0,
            timeout=timeout,
            # The SDK's aiohttp transport costs less CPU per call than its
            # default httpx2 one. Of the SDK's pool limits, aiohttp keeps the
            # cap on connections and the 5 s keep-alive, not the idle cap.
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )

    def client(self) -> openai.AsyncOpenAI:
        """This event loop's pooled client."""
        return self._clients.get()

    async def aclose(self) -> None:
        await self._clients.aclose()

    @property
    def default_model(self) -> str:  # type: ignore[override]
        if self._default_model:
            return self._default_model
        return self._models[0].id if self._models else ""

    # --- chat -----------------------------------------------------------------------

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The keyword arguments of `chat.completions.create` for `request`."""
        messages = [_message_payload(m) for m in request.messages]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        body: dict[str, Any] = {
            "model": request.model or self.default_model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            token_limit_field(self.base_url): request.max_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop"] = list(request.stop)
        if request.tools:
            body["tools"] = [_tool_payload(t) for t in request.tools]
            if request.tool_choice:
                body["tool_choice"] = _tool_choice_payload(request.tool_choice)
        return body

    async def _open_stream(self, body: dict[str, Any]) -> openai.AsyncStream[object]:
        """POST the chat completion and return its stream of chunks as plain JSON.

        `chat.completions.create` would transform the body by introspecting its
        typed parameters and build a pydantic model of every chunk (together
        ~1 ms of CPU for a short answer). The SDK's own `post` with `cast_to=object`
        keeps everything else it does: the pooled connection, auth headers,
        timeouts, status errors, the SSE decoder, error payloads in the stream,
        and draining the body at `[DONE]` so the connection is reused.
        """
        return await self.client().post(
            "/chat/completions",
            body=body,
            cast_to=object,
            stream=True,
            stream_cls=openai.AsyncStream[object],
            options={"security": {"bearer_auth": True}},
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        body = self.request_body(request)
        try:
            upstream = await self._open_stream(body)
        except SDK_ERRORS as exc:
            raise map_error(exc) from exc

        texts: list[str] = []
        calls: dict[int, _PendingCall] = {}
        finish: str | None = None
        stop_string: str | None = None
        usage: Usage | None = None
        started = False
        try:
            try:
                # Each chunk is the JSON object as sent: a chunk that is not
                # one (a list, a string, fields of the wrong type) fails on
                # `.get` or iteration below and is reported as not an answer.
                async for chunk in upstream:
                    choices, raw_usage = chunk.get("choices"), chunk.get("usage")
                    if choices is None and raw_usage is None:
                        continue  # not a chunk: an extension or a keep-alive
                    started = True
                    if raw_usage is not None:
                        usage = self._usage(raw_usage)
                    for choice in choices or ():
                        if (choice.get("index") or 0) != 0:
                            continue  # n > 1 is never asked for
                        delta = choice.get("delta") or {}
                        content = delta.get("content")
                        if content:
                            if not isinstance(content, str):
                                raise TypeError("content is not text")
                            texts.append(content)
                            yield TextDelta(content)
                        for piece in delta.get("tool_calls") or ():
                            self._add_tool_piece(calls, piece)
                        reason = choice.get("finish_reason")
                        if reason and finish is None:
                            finish = reason
                            stop_string = self._matched_stop(choice, request)
                            for call in self._finished_calls(calls):
                                yield ToolCallEvent(call)
            except SDK_ERRORS as exc:
                raise map_error(exc, started=started) from exc
            except (ValueError, AttributeError, TypeError) as exc:
                # Not JSON, or JSON that is no chunk: not a compatible server.
                raise UpstreamError(
                    "The model server sent something that is not an answer.", retryable=False
                ) from exc
        finally:
            # Closing the SDK stream closes the HTTP response: when the caller
            # goes away mid-answer, the upstream stops generating at once.
            await upstream.close()

        if finish is None:
            if not started:
                raise UpstreamError(
                    "The model server sent something that is not an answer.", retryable=False
                )
            raise UpstreamError("The model server ended the answer early.", retryable=True)
        if usage is None:
            usage = self._estimate_usage(request, texts, calls)
        yield usage
        if stop_string is not None:
            yield Stop("stop_sequence", stop_string)
        elif calls and finish == "stop":
            # Some compatible servers report tool calls with `stop`.
            yield Stop("tool_use")
        else:
            yield Stop(FINISH_REASONS.get(finish, "end_turn"))

    @staticmethod
    def _usage(raw: Any) -> Usage:
        """The platform's counts from the chunk's `usage` (its JSON object, or
        anything with the same attributes)."""
        # OpenAI counts cached prompt tokens inside `prompt_tokens`; the platform
        # keeps them apart (they are priced apart), so the total stays the same.
        details = _field(raw, "prompt_tokens_details")
        cached = int(_field(details, "cached_tokens") or 0) if details else 0
        prompt = int(_field(raw, "prompt_tokens") or 0)
        return Usage(
            prompt_tokens=max(0, prompt - cached),
            completion_tokens=int(_field(raw, "completion_tokens") or 0),
            cache_read_tokens=min(cached, prompt),
        )

    @staticmethod
    def _estimate_usage(
        request: ChatRequest, texts: list[str], calls: dict[int, _PendingCall]
    ) -> Usage:
        prompt = [request.system or ""]
        for message in request.messages:
            prompt.append(message.content)
            prompt.extend(c.name + c.arguments_json for c in message.tool_calls)
        answer = "".join(texts) + "".join(c.name + "".join(c.arguments) for c in calls.values())
        return Usage(
            prompt_tokens=estimate_tokens("".join(prompt)),
            completion_tokens=estimate_tokens(answer),
            estimated=True,
        )

    @staticmethod
    def _add_tool_piece(calls: dict[int, _PendingCall], piece: dict[str, Any]) -> None:
        index = piece.get("index")
        call = calls.setdefault(index if index is not None else len(calls), _PendingCall())
        if piece.get("id"):
            call.id = str(piece["id"])
        function = piece.get("function")
        if function is not None:
            if function.get("name"):
                call.name = str(function["name"])
            if function.get("arguments"):
                call.arguments.append(str(function["arguments"]))

    @staticmethod
    def _finished_calls(calls: dict[int, _PendingCall]) -> list[ToolCall]:
        finished = []
        for index in sorted(calls):
            pending = calls[index]
            text = "".join(pending.arguments).strip()
            try:
                arguments = json.loads(text) if text else {}
            except ValueError as exc:
                raise UpstreamError(
                    f"The model called {pending.name!r} with arguments that are not JSON.",
                    retryable=True,
                ) from exc
            if not isinstance(arguments, dict):
                arguments = {"value": arguments}
            finished.append(
                ToolCall(id=pending.id or f"call_{index}", name=pending.name, arguments=arguments)
            )
        return finished

    @staticmethod
    def _matched_stop(choice: dict[str, Any], request: ChatRequest) -> str | None:
        """The stop string that ended the answer, when the server says (vLLM puts
        it in the choice's non-standard `stop_reason`; OpenAI does not say)."""
        if choice.get("finish_reason") != "stop" or not request.stop:
            return None
        matched = choice.get("stop_reason")
        return matched if isinstance(matched, str) and matched in request.stop else None

    # --- models and health ------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        now = time.monotonic()
        if self._models is not None and now - self._models_at < self.models_cache_s:
            return list(self._models)
        try:
            page = await self.client().models.list()
        except SDK_ERRORS as exc:
            self._models_failed_at = now
            raise map_error(exc) from exc
        except ValueError as exc:
            self._models_failed_at = now
            raise UpstreamError("The model server's model list is not readable.") from exc
        models = [ModelInfo(id=model.id, backend=self.name) for model in page.data]
        self._models, self._models_at, self._models_failed_at = models, now, None
        return list(models)

    async def serves(self, model: str) -> bool:
        # Routing sends names nobody else serves here last; when the list cannot
        # be fetched, trying the server is better than refusing the request.
        failed_at = self._models_failed_at
        if failed_at is not None and time.monotonic() - failed_at < MODELS_RETRY_S:
            return True
        try:
            models = await self.list_models()
        except UpstreamFailure:
            return True
        return any(info.id == model for info in models)

    async def health(self) -> bool:
        try:
            await self.client().models.list(timeout=min(HEALTH_TIMEOUT_S, self.timeout))
        except (*SDK_ERRORS, ValueError):
            return False
        return True
