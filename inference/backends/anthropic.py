"""The Anthropic backend: the Messages API through the official async SDK, over
its aiohttp transport, one pooled client per event loop.

API version: every request is sent with `anthropic-version: 2023-06-01`. The
installed SDK (2.x) sends `2026-10-21` by default, and under that version the
API refuses `temperature`, `top_p` and `top_k` with a 400, even at their
defaults. Games rely on `temperature`, so rather than drop it silently the
client pins the older version through `default_headers` (which the SDK lets
win over its own header) and sends the sampling parameters through
`extra_body`, since the SDK no longer types them. The fake upstream enforces
both versions' rules and the backend's tests run against it.

Streams only: a non-streaming answer is the same event stream collected by
the caller, which keeps one code path for usage, stops and errors.

The SDK's own retries are off (`max_retries=0`): the platform retries, and
only before the first event has been passed on.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
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
    ToolCall,
    ToolCallEvent,
    Usage,
    drain,
    retry_after,
)
from inference.errors import (
    ApiError,
    ConnectionFailed,
    InferenceTimeout,
    InvalidRequest,
    ModelNotAvailable,
    PayloadTooLarge,
    UpstreamError,
)

# The current Sonnet in the installed SDK's `types/model_param.py`.
FALLBACK_DEFAULT_MODEL = "claude-sonnet-5-5"
# The version that still takes sampling parameters (see the module docstring).
API_VERSION = "2023-06-01"
MODELS_CACHE_S = 60.0
MODELS_PAGE_SIZE = 100
HEALTH_TIMEOUT_S = 5.0

# Stop reasons outside the platform's vocabulary, mapped onto it.
STOP_REASONS = {"model_context_window_exceeded": "max_tokens", "pause_turn": "end_turn"}
# Error types of an `event: error` frame worth another attempt (before any output).
RETRYABLE_STREAM_ERRORS = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}


class AnthropicBackend(Backend):
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        default_model: str | None = None,
        timeout_s: float | None = None,
        connect_timeout_s: float | None = None,
        models_cache_s: float = MODELS_CACHE_S,
        health_timeout_s: float = HEALTH_TIMEOUT_S,
    ) -> None:
        self.api_key = api_key or settings.ANTHROPIC_API_KEY
        self.base_url = base_url or settings.ANTHROPIC_BASE_URL
        self.default_model = (
            default_model
            or getattr(settings, "ANTHROPIC_DEFAULT_MODEL", None)
            or FALLBACK_DEFAULT_MODEL
        )
        self.timeout = anthropic.Timeout(
            timeout_s if timeout_s is not None else settings.INFERENCE_TIMEOUT_S,
            connect=(
                connect_timeout_s
                if connect_timeout_s is not None
                else settings.INFERENCE_CONNECT_TIMEOUT_S
            ),
        )
        self.models_cache_s = models_cache_s
        self.health_timeout_s = health_timeout_s
        self._clients = PerLoopClient(self._new_client)
        self._models: list[ModelInfo] | None = None
        self._models_at = 0.0

    def _new_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=0,
            timeout=self.timeout,
            default_headers={"anthropic-version": API_VERSION},
            # The SDK's aiohttp transport costs less CPU per call than its
            # default httpx2 one. Of the SDK's pool limits, aiohttp keeps the
            # cap on connections and the 5 s keep-alive, not the idle cap.
            http_client=anthropic.DefaultAioHttpClient(timeout=self.timeout),
        )

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """This event loop's pooled client."""
        return self._clients.get()

    # --- chat ------------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        upstream = None
        try:
            upstream = await self.client.messages.create(**to_anthropic(request), stream=True)
            async for event in _events(upstream):
                yield event
        except ApiError:
            raise
        except Exception as exc:
            raise map_error(exc, model=request.model) from exc
        finally:
            # Closing the generator lands here too: the upstream response is
            # closed at once, so the model stops generating (and billing).
            if upstream is not None:
                await upstream.close()

    # --- models and health --------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        now = time.monotonic()
        if self._models is not None and now - self._models_at < self.models_cache_s:
            return self._models
        try:
            models = [
                ModelInfo(id=model.id, backend=self.name, display_name=model.display_name or "")
                async for model in self.client.models.list(limit=MODELS_PAGE_SIZE)
            ]
        except ApiError:
            raise
        except Exception as exc:
            raise map_error(exc) from exc
        self._models, self._models_at = models, now
        return models

    async def serves(self, model: str) -> bool:
        # Routing sends every claude-* here; the API itself says if one is unknown.
        return model.startswith("claude-")

    async def health(self) -> bool:
        try:
            await self.client.models.list(limit=1, timeout=self.health_timeout_s)
        except Exception:
            return False
        return True

    async def aclose(self) -> None:
        await self._clients.aclose()


# --- the request ------------------------------------------------------------------------


def to_anthropic(request: ChatRequest) -> dict[str, Any]:
    """The keyword arguments of `messages.create` for a normalized request."""
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": _messages(request.messages),
    }
    if request.system:
        params["system"] = request.system
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = [
            {
                "name": tool.name,
                **({"description": tool.description} if tool.description else {}),
                "input_schema": tool.parameters or {"type": "object", "properties": {}},
            }
            for tool in request.tools
        ]
        if request.tool_choice:
            params["tool_choice"] = _tool_choice(request.tool_choice)
    sampling = {
        name: value
        for name, value in (("temperature", request.temperature), ("top_p", request.top_p))
        if value is not None
    }
    if sampling:
        params["extra_body"] = sampling
    return params


def _tool_choice(choice: str) -> dict[str, str]:
    if choice in ("auto", "none", "any"):
        return {"type": choice}
    return {"type": "tool", "name": choice}


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        result: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id or "",
            "content": message.content,
        }
        if message.is_error:
            result["is_error"] = True
        return [result]
    # The API refuses empty text blocks.
    blocks: list[dict[str, Any]] = (
        [{"type": "text", "text": message.content}] if message.content else []
    )
    if message.role == "assistant":
        blocks += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
            for call in message.tool_calls
        ]
    return blocks


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Anthropic's turns: tool results become user turns, and consecutive turns
    of one role merge, since the API wants user and assistant to alternate."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        # Tool results must open the user turn that answers the tool calls.
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return turns


# --- the answer ------------------------------------------------------------------------------


async def _events(upstream: Any) -> AsyncIterator[Event]:
    """The platform's events from Anthropic's raw stream events."""
    usage: dict[str, int] = {}
    stop_reason: str | None = None
    stop_sequence: str | None = None
    tool_blocks: dict[int, dict[str, Any]] = {}
    async for event in upstream:
        kind = event.type
        if kind == "message_start":
            _take_usage(usage, event.message.usage)
            # The prompt's count is known now: if the answer is cut off later,
            # this is what the upstream bills for it.
            yield _usage_event(usage)
        elif kind == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                tool_blocks[event.index] = {
                    "id": block.id,
                    "name": block.name,
                    "input": block.input or {},
                    "pieces": [],
                }
        elif kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                if delta.text:
                    yield TextDelta(delta.text)
            elif delta.type == "input_json_delta" and event.index in tool_blocks:
                tool_blocks[event.index]["pieces"].append(delta.partial_json)
        elif kind == "content_block_stop":
            block = tool_blocks.pop(event.index, None)
            if block is not None:
                yield ToolCallEvent(_tool_call(block))
        elif kind == "message_delta":
            # Cumulative figures: they replace what came before, never add to it.
            _take_usage(usage, event.usage)
            stop_reason = event.delta.stop_reason or stop_reason
            stop_sequence = event.delta.stop_sequence
        elif kind == "message_stop":
            yield _usage_event(usage)
            reason = stop_reason or "end_turn"
            yield Stop(STOP_REASONS.get(reason, reason), stop_sequence)
            # Up to the end of the body, so the connection goes back to the pool.
            await drain(upstream)
            return
    # The SDK ends quietly on a cut stream, or on a body that was no SSE at all.
    raise UpstreamError("The model server ended the answer before it was complete.")


def _usage_event(usage: dict[str, int]) -> Usage:
    return Usage(
        prompt_tokens=usage.get("input_tokens", 0),
        completion_tokens=usage.get("output_tokens", 0),
        cache_write_tokens=usage.get("cache_creation_input_tokens", 0),
        cache_read_tokens=usage.get("cache_read_input_tokens", 0),
    )


def _take_usage(usage: dict[str, int], figures: Any) -> None:
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ):
        value = getattr(figures, name, None)
        if value is not None:
            usage[name] = value


def _tool_call(block: dict[str, Any]) -> ToolCall:
    encoded = "".join(block["pieces"])
    if not encoded:
        arguments = block["input"]
    else:
        try:
            arguments = json.loads(encoded)
        except ValueError as exc:
            raise UpstreamError("The model server sent malformed tool arguments.") from exc
    if not isinstance(arguments, dict):
        raise UpstreamError("The model server sent tool arguments that are not an object.")
    return ToolCall(id=block["id"], name=block["name"], arguments=arguments)


# --- errors ---------------------------------------------------------------------------------


def map_error(exc: Exception, *, model: str | None = None) -> ApiError:
    """The platform's error for an SDK or transport failure.

    The SDK's aiohttp transport raises `httpx2` errors for aiohttp's (a
    connection refused or lost is an `httpx2.ConnectError`, a broken body an
    `httpx2.ReadError`, a silent socket an `httpx2.ReadTimeout`), so the SDK's
    own wrapping and the checks below see the same errors as with httpx2.
    """
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return InferenceTimeout()
    if isinstance(exc, anthropic.APIConnectionError):
        return ConnectionFailed()
    if isinstance(exc, httpx2.TransportError):
        # Raised while reading an answer already under way: the connection broke.
        return UpstreamError(
            "The model server closed the connection before the answer was complete.",
            retryable=True,
        )
    if isinstance(exc, anthropic.APIStatusError):
        return _map_status(exc, model=model)
    return UpstreamError("The model server sent an answer that could not be read.")


def _map_status(exc: anthropic.APIStatusError, *, model: str | None) -> ApiError:
    status = exc.status_code
    message = exc.api_message or None
    if status == 200:
        # An `event: error` frame after the answer had started.
        return UpstreamError(
            f"The model server failed mid-answer: {message or exc.type or 'unknown error'}",
            retryable=exc.type in RETRYABLE_STREAM_ERRORS,
        )
    if status == 400:
        return InvalidRequest(message)
    if status in (401, 403):
        # The platform's own key is refused: not the caller's fault, and trying
        # again will not help.
        return UpstreamError(
            "The model server refused the platform's credentials.", retryable=False
        )
    if status == 404:
        return ModelNotAvailable(
            f"The model {model!r} is not available." if model else message,
            details={"model": model} if model else None,
        )
    if status == 413:
        return PayloadTooLarge(message)
    if status in (408, 409, 429) or status >= 500:
        return UpstreamError(
            f"The model server answered {status}: {message or 'no details'}",
            retryable=True,
            retry_after=retry_after(exc.response.headers),
        )
    return UpstreamError(f"The model server answered {status}: {message or 'no details'}")
