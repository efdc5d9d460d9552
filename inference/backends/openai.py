"""The OpenAI-compatible backend: OpenAI itself, Groq, vLLM, llama.cpp server…

Spoken over plain aiohttp, one pooled session per event loop: a chat completion
is one POST whose answer is a stream of server-sent JSON chunks, and the
official SDK's request building and response layers cost more CPU than the rest
of a proxied call together (`docs/decisions.md`, "Serving"). Every answer is
streamed upstream with `include_usage`, so that the usage record holds the
server's own counts; a server that ignores the option gets an estimate, and the
record says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
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
    drain,
    retry_after,
)
from inference.backends.sse import sse_events
from inference.errors import (
    ApiError,
    ConnectionFailed,
    InferenceTimeout,
    InvalidRequest,
    ModelNotAvailable,
    UpstreamError,
    UpstreamFailure,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MODELS_CACHE_S = 60.0
# After a failed model listing, routing asks again only after this long, so a
# server that is down does not cost a connect timeout on every request.
MODELS_RETRY_S = 5.0
HEALTH_TIMEOUT_S = 3.0
# What a key-less client sends: local servers ignore it, OpenAI refuses it.
NO_KEY = "none"
# The pool: connections open at once (each stream holds one) and how long an
# idle one is kept, as the official SDK sets them.
MAX_CONNECTIONS = 1000
KEEPALIVE_S = 5.0
USER_AGENT = "vanilla-game-platform"
# How much of an error answer is read, and quoted when it is not JSON.
ERROR_BODY_LIMIT = 64 * 1024
QUOTED_BODY = 300

FINISH_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# What a failed exchange raises: aiohttp's errors (a refused or dropped
# connection, a reply that is not HTTP) and its timeouts.
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)


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


def transport_error(exc: aiohttp.ClientError | TimeoutError, *, started: bool = False) -> ApiError:
    """The platform error for a failed exchange. `started`: the answer had begun."""
    if isinstance(exc, TimeoutError):
        return InferenceTimeout()
    if started:
        return UpstreamError("The model server broke off the answer.", retryable=True)
    return ConnectionFailed()


def _error_object(body: bytes) -> dict[str, Any] | None:
    """The `error` object of an OpenAI-style error body, or None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error", data)
    if isinstance(error, str):
        return {"message": error}
    return error if isinstance(error, dict) else None


def status_error(status: int, headers: Any, body: bytes) -> ApiError:
    """The platform error for an answer with a non-2xx `status`."""
    error = _error_object(body) or {}
    message = error.get("message")
    if not isinstance(message, str) or not message:
        text = body[:QUOTED_BODY].decode("utf-8", "replace").strip()
        message = text or "no details"
    details: dict[str, Any] = {"upstream_status": status}
    request_id = headers.get("x-request-id")
    if request_id:
        details["upstream_request_id"] = request_id
    if status == 429 or status >= 500 or status in (408, 409):
        return UpstreamError(
            f"The model server is busy or failing ({status}): {message}",
            retryable=True,
            retry_after=retry_after(headers),
            details=details,
        )
    if status == 404 and (error.get("code") == "model_not_found" or "model" in message.lower()):
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


def stream_error(error: Any) -> ApiError:
    """The platform error for an error payload sent inside a 200 stream."""
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = "An error occurred during streaming"
    kind = error.get("type") if isinstance(error, dict) else None
    transient = kind in (None, "server_error", "api_error", "overloaded_error")
    return UpstreamError(f"The model server reported an error: {message}", retryable=transient)


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if 200 <= response.status < 300:
        return
    try:
        body = await response.content.read(ERROR_BODY_LIMIT)
    except TRANSPORT_ERRORS:
        body = b""
    finally:
        response.close()
    raise status_error(response.status, response.headers, body)


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
        root = (self.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._chat_url = f"{root}/chat/completions"
        self._models_url = f"{root}/models"
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

    def _new_client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S),
            # `sock_read` bounds each wait for the server, so a long answer that
            # keeps coming is never cut; `connect` includes waiting for the pool.
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=self.timeout,
                sock_connect=min(self.connect_timeout, self.timeout),
                sock_read=self.timeout,
            ),
            headers={"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT},
        )

    def client(self) -> aiohttp.ClientSession:
        """This event loop's pooled session."""
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

    async def _open_stream(self, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """POST the chat completion; the answer, once its status says it is one."""
        try:
            response = await self.client().post(
                self._chat_url,
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
            )
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc) from exc
        await _raise_for_status(response)
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        response = await self._open_stream(self.request_body(request))
        texts: list[str] = []
        calls: dict[int, _PendingCall] = {}
        finish: str | None = None
        stop_string: str | None = None
        usage: Usage | None = None
        started = done = False
        events = sse_events(response.content.iter_any())
        try:
            try:
                async for sse in events:
                    if sse.data.startswith("[DONE]"):
                        done = True
                        break
                    # Each chunk is the JSON object as sent: a chunk that is not
                    # one (a list, a string, fields of the wrong type) fails on
                    # `.get` or iteration below and is reported as not an answer.
                    chunk = json.loads(sse.data)
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise stream_error(chunk["error"])
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
            except TRANSPORT_ERRORS as exc:
                raise transport_error(exc, started=started) from exc
            except (ValueError, AttributeError, TypeError) as exc:
                # Not JSON, or JSON that is no chunk: not a compatible server.
                raise UpstreamError(
                    "The model server sent something that is not an answer.", retryable=False
                ) from exc
        finally:
            await events.aclose()
            if done:
                # Read to its end, the response hands its keep-alive
                # connection back to the pool.
                await drain(response.content.iter_any())
            if response.content.at_eof():
                response.release()
            else:
                # Closing a response that is not at its end drops the connection:
                # when the caller goes away mid-answer, the upstream stops at once.
                response.close()

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
            ids = await self._model_ids()
        except ApiError:
            self._models_failed_at = now
            raise
        models = [ModelInfo(id=model_id, backend=self.name) for model_id in ids]
        self._models, self._models_at, self._models_failed_at = models, now, None
        return list(models)

    async def _model_ids(self, timeout: aiohttp.ClientTimeout | None = None) -> list[str]:
        """`GET /models`: the ids the server lists."""
        try:
            async with self.client().get(
                self._models_url, headers={"Accept": "application/json"}, timeout=timeout
            ) as response:
                await _raise_for_status(response)
                page = json.loads(await response.read())
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc) from exc
        except ValueError as exc:
            raise UpstreamError("The model server's model list is not readable.") from exc
        try:
            return [str(item["id"]) for item in page["data"]]
        except (KeyError, TypeError) as exc:
            raise UpstreamError("The model server's model list is not readable.") from exc

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
        limit = min(HEALTH_TIMEOUT_S, self.timeout)
        try:
            await self._model_ids(aiohttp.ClientTimeout(total=limit))
        except ApiError:
            return False
        return True
