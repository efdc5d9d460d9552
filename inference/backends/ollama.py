"""The Ollama backend: one or more Ollama hosts sharing the load.

A request goes to a healthy host that lists the model, least busy first (the
count of requests in flight on this worker). A host that fails before the first
byte of an answer (connection refused or dropped, a 5xx, a timeout) is skipped
for `OLLAMA_COOLDOWN_S` and the request moves on to the next host. Once the
first chunk has arrived the request stays on its host: what was already passed
on cannot be taken back.

Ollama reports exact counts on its last line (`prompt_eval_count`,
`eval_count`) but leaves them out when they are zero, e.g. for a prompt served
from its cache; then the usage is estimated (about four characters a token) and
marked `estimated`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import httpx
import ollama
import pydantic
from django.conf import settings

from inference.backends.base import (
    Backend,
    ChatRequest,
    Event,
    ModelInfo,
    PerLoopClient,
    Stop,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
    drain,
)
from inference.errors import (
    ApiError,
    ConnectionFailed,
    InferenceTimeout,
    InvalidRequest,
    ModelNotAvailable,
    NoBackendAvailable,
    UpstreamError,
)

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 2.0
REACHABLE_TIMEOUT_S = 0.5
REACHABLE_CACHE_S = 30.0
# A model listing is small: waiting the full inference timeout for one would
# stall every request behind a host that accepts connections but never answers.
LIST_TIMEOUT_S = 10.0
CHARS_PER_TOKEN = 4


def canonical_model(name: str) -> str:
    """Ollama treats `name` and `name:latest` as the same model."""
    return name if ":" in name else f"{name}:latest"


def estimate_tokens(chars: int) -> int:
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


@dataclass
class _Host:
    url: str
    client: PerLoopClient
    in_flight: int = 0
    down_until: float = 0.0
    # The names `/api/tags` gave, as given; None until listed (or after a failure).
    listed: tuple[str, ...] | None = None
    listed_at: float = -math.inf
    canonical: frozenset[str] = field(default_factory=frozenset)
    # The listing under way, so concurrent requests on a cold cache share one.
    listing: asyncio.Task | None = None

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def serves(self, model: str) -> bool:
        return canonical_model(model) in self.canonical


@dataclass
class _Failure:
    """What one host's failure means: the error, and what to do about the host."""

    error: ApiError
    mark_down: bool = False
    try_next: bool = True


class OllamaBackend(Backend):
    name = "ollama"

    def __init__(
        self,
        hosts: list[str] | None = None,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        cooldown_s: float | None = None,
        models_cache_s: float | None = None,
        default_model: str | None = None,
    ) -> None:
        urls = settings.OLLAMA_URLS if hosts is None else hosts
        self._timeout = settings.INFERENCE_TIMEOUT_S if timeout is None else timeout
        self._connect_timeout = min(
            self._timeout,
            settings.INFERENCE_CONNECT_TIMEOUT_S if connect_timeout is None else connect_timeout,
        )
        self._cooldown_s = settings.OLLAMA_COOLDOWN_S if cooldown_s is None else cooldown_s
        self._models_cache_s = (
            settings.OLLAMA_MODELS_CACHE_S if models_cache_s is None else models_cache_s
        )
        self._default_model = (
            getattr(settings, "OLLAMA_DEFAULT_MODEL", "")
            if default_model is None
            else default_model
        ) or ""
        self._hosts = [_Host(url.rstrip("/"), PerLoopClient(self._factory(url))) for url in urls]

    def _factory(self, url: str):
        # The timeout is per read, so a long answer that keeps streaming is fine
        # while a host that goes silent is given up on.
        timeout = httpx.Timeout(self._timeout, connect=self._connect_timeout)
        return lambda: ollama.AsyncClient(host=url, timeout=timeout)

    @property
    def hosts(self) -> list[str]:
        return [host.url for host in self._hosts]

    @property
    def default_model(self) -> str:  # type: ignore[override]
        if self._default_model:
            return self._default_model
        for host in self._hosts:
            if host.listed:
                return host.listed[0]
        return ""

    def in_flight(self, url: str) -> int:
        """Requests running on the host `url` now (from this worker)."""
        return next(host.in_flight for host in self._hosts if host.url == url.rstrip("/"))

    def is_down(self, url: str) -> bool:
        """Whether the host `url` is being skipped after a failure."""
        host = next(host for host in self._hosts if host.url == url.rstrip("/"))
        return not host.healthy(time.monotonic())

    # --- models ------------------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        await self._refresh_models()
        now = time.monotonic()
        seen: set[str] = set()
        models: list[ModelInfo] = []
        for host in self._hosts:
            if not host.healthy(now) or not host.listed:
                continue
            for name in host.listed:
                if canonical_model(name) not in seen:
                    seen.add(canonical_model(name))
                    models.append(ModelInfo(id=name, backend=self.name, display_name=name))
        return models

    async def serves(self, model: str) -> bool:
        await self._refresh_models()
        now = time.monotonic()
        return any(host.healthy(now) and host.serves(model) for host in self._hosts)

    async def _refresh_models(self) -> list[_Failure]:
        """Re-list the healthy hosts whose listing is older than the cache allows;
        returns the failures of this round."""
        now = time.monotonic()
        stale = [
            host
            for host in self._hosts
            if host.healthy(now) and now - host.listed_at >= self._models_cache_s
        ]
        if not stale:
            return []
        results = await asyncio.gather(*(self._list_host_once(host) for host in stale))
        return [failure for failure in results if failure is not None]

    async def _list_host_once(self, host: _Host) -> _Failure | None:
        loop = asyncio.get_running_loop()
        task = host.listing
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._list_host(host))
            host.listing = task
        return await asyncio.shield(task)

    async def _list_host(self, host: _Host) -> _Failure | None:
        try:
            listing = await asyncio.wait_for(
                host.client.get().list(), min(self._timeout, LIST_TIMEOUT_S)
            )
        except Exception as exc:
            failure = self._failure(host, exc)
            # A host that cannot list its models cannot be chosen either.
            self._mark_down(host, exc)
            host.listed, host.listed_at, host.canonical = None, -math.inf, frozenset()
            return failure
        names = tuple(model.model for model in listing.models if model.model)
        host.listed, host.listed_at = names, time.monotonic()
        host.canonical = frozenset(canonical_model(name) for name in names)
        return None

    # --- chat ----------------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        if not self._hosts:
            raise NoBackendAvailable("No Ollama host is configured.")
        list_failures = await self._refresh_models()
        now = time.monotonic()
        healthy = [host for host in self._hosts if host.healthy(now)]
        if not healthy:
            if list_failures:
                raise list_failures[-1].error
            raise NoBackendAvailable("Every Ollama host is cooling down after a failure.")
        # Stable sort: between equally busy hosts the configured order decides.
        candidates = sorted(
            (host for host in healthy if host.serves(request.model)), key=lambda h: h.in_flight
        )
        if not candidates:
            raise ModelNotAvailable(f"No Ollama host serves the model '{request.model}'.")

        payload = {
            "model": request.model,
            "messages": _messages(request),
            "tools": _tools(request),
            "options": _options(request),
        }
        last: _Failure | None = None
        for host in candidates:
            if not host.healthy(time.monotonic()):
                continue  # failed for a concurrent request meanwhile
            host.in_flight += 1
            upstream: AsyncIterator[ollama.ChatResponse] | None = None
            try:
                try:
                    upstream = await host.client.get().chat(stream=True, **payload)
                    first = await anext(upstream)
                except Exception as exc:
                    last = self._failure(host, exc)
                    last.error.__cause__ = exc
                    if last.mark_down:
                        self._mark_down(host, exc)
                    if last.try_next:
                        continue
                    raise last.error from exc
                async with aclosing(self._events(request, first, upstream)) as events:
                    async for event in events:
                        yield event
                return
            finally:
                host.in_flight -= 1
                if upstream is not None:
                    # Closing the SDK's generator leaves its `httpx` stream
                    # context, which closes the response (and its connection)
                    # now instead of whenever the generator is collected.
                    await upstream.aclose()  # type: ignore[attr-defined]
        if last is None:
            raise NoBackendAvailable("Every Ollama host is cooling down after a failure.")
        raise last.error

    async def _events(
        self,
        request: ChatRequest,
        first: ollama.ChatResponse,
        upstream: AsyncIterator[ollama.ChatResponse],
    ) -> AsyncIterator[Event]:
        reply_chars = 0
        calls = 0
        final: ollama.ChatResponse | None = None
        part: ollama.ChatResponse | None = first
        while part is not None:
            message = part.message
            if message.content:
                reply_chars += len(message.content)
                yield TextDelta(message.content)
            for call in message.tool_calls or ():
                calls += 1
                tool_call = ToolCall(
                    # Ollama's calls carry no id the SDK keeps; callers need one
                    # to match results to calls, unique across a conversation.
                    id=f"call_{secrets.token_hex(12)}",
                    name=call.function.name,
                    arguments=dict(call.function.arguments or {}),
                )
                reply_chars += len(tool_call.name) + len(tool_call.arguments_json)
                yield ToolCallEvent(tool_call)
            if part.done:
                final = part
                break
            try:
                part = await anext(upstream)
            except StopAsyncIteration:
                part = None
            except Exception as exc:
                raise _mid_stream_error(exc) from exc
        if final is None:
            raise UpstreamError("The model server ended the answer early.", retryable=True)

        prompt_tokens, completion_tokens = final.prompt_eval_count, final.eval_count
        estimated = prompt_tokens is None or completion_tokens is None
        if prompt_tokens is None:
            prompt_tokens = estimate_tokens(_prompt_chars(request))
        if completion_tokens is None:
            completion_tokens = estimate_tokens(reply_chars)
        yield Usage(
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, estimated=estimated
        )
        if calls:
            yield Stop("tool_use")
        elif final.done_reason == "length":
            yield Stop("max_tokens")
        else:
            # Ollama says `stop` for a stop sequence too, without naming it.
            yield Stop("end_turn")
        # Up to the end of the body, so the connection goes back to the pool.
        await drain(upstream)

    # --- failures ------------------------------------------------------------------------

    def _failure(self, host: _Host, exc: BaseException) -> _Failure:
        if isinstance(exc, ollama.ResponseError):
            status, message = exc.status_code, str(exc.error)
            if status == 404:
                # The listing was out of date; another host may still have it.
                host.listed_at = -math.inf
                return _Failure(ModelNotAvailable(message))
            if status == 400:
                return _Failure(InvalidRequest(message), try_next=False)
            if status == 429:
                return _Failure(UpstreamError(message, retryable=True))
            if status >= 500 or status == -1:
                return _Failure(UpstreamError(message, retryable=True), mark_down=True)
            return _Failure(UpstreamError(message, retryable=False), try_next=False)
        if isinstance(exc, httpx.TimeoutException | TimeoutError) and not isinstance(
            exc, httpx.ConnectTimeout
        ):
            return _Failure(
                InferenceTimeout(f"Ollama at {host.url} did not answer in time."), mark_down=True
            )
        if isinstance(exc, httpx.TransportError | ConnectionError | OSError):
            return _Failure(
                ConnectionFailed(f"Could not reach Ollama at {host.url}."), mark_down=True
            )
        if isinstance(exc, json.JSONDecodeError | pydantic.ValidationError | StopAsyncIteration):
            return _Failure(
                UpstreamError(
                    f"Ollama at {host.url} sent something that is not Ollama's API.", retryable=True
                ),
                mark_down=True,
            )
        if isinstance(exc, httpx.HTTPError):
            return _Failure(UpstreamError(str(exc) or type(exc).__name__, retryable=True))
        raise exc

    def _mark_down(self, host: _Host, exc: BaseException) -> None:
        if host.healthy(time.monotonic()):
            logger.warning(
                "Ollama host %s failed (%s); skipping it for %.0f s",
                host.url,
                type(exc).__name__,
                self._cooldown_s,
            )
        host.down_until = time.monotonic() + self._cooldown_s

    # --- health --------------------------------------------------------------------------

    async def health(self) -> bool:
        if not self._hosts:
            return False
        answers = await asyncio.gather(*(self._answers(host) for host in self._hosts))
        return any(answers)

    async def _answers(self, host: _Host) -> bool:
        # The SDK has no call for `/api/version`; its pooled httpx client does.
        client: httpx.AsyncClient = host.client.get()._client
        try:
            response = await client.get("/api/version", timeout=HEALTH_TIMEOUT_S)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def aclose(self) -> None:
        for host in self._hosts:
            await host.client.aclose()


# --- request mapping ---------------------------------------------------------------------


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    names_by_call_id: dict[str, str] = {}
    for message in request.messages:
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.role == "assistant" and message.tool_calls:
            entry["tool_calls"] = [
                {"function": {"name": call.name, "arguments": call.arguments}}
                for call in message.tool_calls
            ]
            names_by_call_id.update({call.id: call.name for call in message.tool_calls})
        elif message.role == "tool":
            if message.is_error:
                # Ollama has no error flag on a tool result; the model reads it here.
                entry["content"] = f"Error: {message.content}"
            name = message.tool_name or names_by_call_id.get(message.tool_call_id or "")
            if name:
                entry["tool_name"] = name
        messages.append(entry)
    return messages


def _tools(request: ChatRequest) -> list[dict[str, Any]]:
    if request.tool_choice == "none":
        return []
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in request.tools
    ]


def _options(request: ChatRequest) -> dict[str, Any]:
    options: dict[str, Any] = {
        "num_predict": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": list(request.stop) or None,
    }
    return {key: value for key, value in options.items() if value is not None}


def _prompt_chars(request: ChatRequest) -> int:
    chars = len(request.system or "")
    for message in request.messages:
        chars += len(message.content)
        chars += sum(len(call.name) + len(call.arguments_json) for call in message.tool_calls)
    return chars


def _mid_stream_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ollama.ResponseError):
        return UpstreamError(str(exc.error), retryable=True)
    if isinstance(exc, httpx.TimeoutException):
        return InferenceTimeout("The model server stopped sending mid-answer.")
    if isinstance(exc, httpx.TransportError | ConnectionError):
        # Reached, then lost: an upstream fault like the other backends' cut
        # streams, not CONNECTION_FAILED (which means it could not be reached).
        return UpstreamError("The connection to the model server broke mid-answer.", retryable=True)
    if isinstance(exc, json.JSONDecodeError | pydantic.ValidationError):
        return UpstreamError("The model server sent something that is not Ollama's API.")
    if isinstance(exc, ApiError):
        return exc
    return UpstreamError(str(exc) or type(exc).__name__)


# --- reachability, for choosing the default backend ----------------------------------------

_reachable_cache: dict[tuple[str, ...], tuple[float, bool]] = {}


def forget_ollama_reachability() -> None:
    """Drop the remembered answers of `ollama_reachable` (tests, settings changes)."""
    _reachable_cache.clear()


async def ollama_reachable(hosts: list[str] | None = None, *, refresh: bool = False) -> bool:
    """Whether any configured Ollama host answers right now (cached for half a
    minute, so routing can ask on every request without probing every time)."""
    urls = tuple(settings.OLLAMA_URLS if hosts is None else hosts)
    if not urls:
        return False
    now = time.monotonic()
    cached = _reachable_cache.get(urls)
    if cached is not None and not refresh and now < cached[0]:
        return cached[1]
    async with httpx.AsyncClient(timeout=REACHABLE_TIMEOUT_S) as client:

        async def answers(url: str) -> bool:
            try:
                response = await client.get(url.rstrip("/") + "/api/version")
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        reachable = any(await asyncio.gather(*(answers(url) for url in urls)))
    _reachable_cache[urls] = (time.monotonic() + REACHABLE_CACHE_S, reachable)
    return reachable
