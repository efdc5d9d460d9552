"""The one small protocol every model backend speaks.

A backend turns a normalized `ChatRequest` into an async stream of events:
`TextDelta`s, whole `ToolCall`s, `Usage` (the upstream's own figures: the last
one is the whole answer's; an earlier one may give the prompt's count as soon as
it is known) and one `Stop`. JSON, SSE, WebSocket and the compatible endpoints are renderings of
this one stream; a non-streaming answer is the same stream collected.

Backends raise only `inference.errors.UpstreamFailure` subclasses (or
`ModelNotAvailable` / `InvalidRequest` for a model or request the upstream
refuses): `ConnectionFailed` and retryable `UpstreamError`s are retried by the
caller, but only before the first event has been passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Role = Literal["user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. `tool` turns carry a tool's result for `tool_call_id`."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    is_error: bool = False


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    system: str | None = None
    max_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    # "auto", "none", "any" (some tool must be called) or a tool's name.
    tool_choice: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    # True when the upstream gave no counts and these were estimated.
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return (
            self.prompt_tokens
            + self.completion_tokens
            + self.cache_write_tokens
            + self.cache_read_tokens
        )


# Normalized stop reasons (Anthropic's names, which the others map onto).
StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "error"]


@dataclass(frozen=True, slots=True)
class Stop:
    reason: str
    stop_sequence: str | None = None


Event = TextDelta | ToolCallEvent | Usage | Stop


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    backend: str
    available: bool = True
    display_name: str = ""


class Backend:
    """Base class of backends. Subclasses set `name` and implement `stream`."""

    name: ClassVar[str] = ""
    # The model used when a request names none and this is the default backend.
    default_model: str = ""

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Yield the events of one answer. Must be an async generator: closing it
        (`aclose()`) closes the upstream request at once."""
        raise NotImplementedError
        yield  # pragma: no cover

    async def list_models(self) -> list[ModelInfo]:
        raise NotImplementedError

    async def serves(self, model: str) -> bool:
        """Whether this backend offers `model` (used by routing)."""
        return any(info.id == model for info in await self.list_models())

    async def health(self) -> bool:
        """Whether the upstream answers right now (for /healthz)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release pooled clients (tests and shutdown)."""


class PerLoopClient:
    """One pooled upstream client per event loop, created lazily.

    Upstream clients hold a connection pool (an aiohttp session for OpenAI and
    the Anthropic SDK, an httpx pool for the Ollama SDK) bound to the loop they were first used
    on; sharing one across loops breaks, creating one per request wastes a TCP
    (and TLS) handshake each time.

    A client is closed by `aclose()` on its loop, or else when its loop is shut
    down: `asyncio.run` and `asyncio.Runner` (async_to_sync, pytest-asyncio,
    uvicorn) close a loop's async generators before closing the loop, and each
    client is watched by one that closes it. Left to the garbage collector
    after its loop has closed, a pool could not close its sockets any more
    (aiohttp logs "Unclosed client session"). Daphne's loop is never shut down:
    its clients live as long as the process.
    """

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        # Strong keys: a watcher refers to its loop (through the loop's
        # finalizer hook), so weak keys would never be dropped anyway. An entry
        # goes when its client is closed; one whose loop was closed without a
        # shutdown (no runner) goes when the next client is made.
        self._clients: dict[asyncio.AbstractEventLoop, tuple[Any, AsyncGenerator[None, None]]] = {}

    def get(self):
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            self._forget_closed_loops()
            client = self._factory()
            entry = self._clients[loop] = (client, self._watch(loop, client))
        return entry[0]

    async def aclose(self) -> None:
        """Close this loop's client (the next `get()` makes a new one)."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()

    def _watch(self, loop: asyncio.AbstractEventLoop, client: Any) -> AsyncGenerator[None, None]:
        """An async generator that closes `client` when it is closed, started on
        the running loop so the loop tracks it and closes it on shutdown."""

        async def watcher() -> AsyncGenerator[None, None]:
            try:
                yield
            finally:
                if self._clients.get(loop, (None,))[0] is client:
                    self._clients.pop(loop, None)
                await _close_client(client)

        generator = watcher()
        # The first step runs the loop's `firstiter` hook (which registers the
        # generator for `shutdown_asyncgens`) and stops at the `yield`.
        with contextlib.suppress(StopIteration):
            generator.asend(None).send(None)
        return generator

    def _forget_closed_loops(self) -> None:
        # `list()` first: other threads' loops (async_to_sync) add entries.
        for loop in list(self._clients):
            if loop.is_closed():
                self._clients.pop(loop, None)


async def _close_client(client: Any) -> None:
    close = getattr(client, "close", None) or getattr(client, "aclose", None)
    if close is not None:
        result = close()
        if asyncio.iscoroutine(result):
            await result


# How long a backend waits, after an answer's last event, for the rest of the
# HTTP body (the end of the chunked stream).
DRAIN_TIMEOUT_S = 1.0


async def drain(stream: AsyncIterator[Any], timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Read what is left of a finished answer's stream.

    A response read to its end hands its keep-alive connection back to the
    pool; one closed before the end of its body takes the connection with it,
    and the next request pays a new TCP (and TLS) handshake. An upstream that
    lingers after its last event is not waited for: it is closed as before.
    """
    try:
        async with asyncio.timeout(timeout_s):
            async for _ in stream:
                pass
    except Exception:  # the answer is complete; nothing after it matters
        pass


def collect_text(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def retry_after(headers: Any) -> float | None:
    """Seconds an upstream asks us to wait, from `retry-after-ms` or `retry-after`
    (seconds or an HTTP date), as both Stainless SDKs read them."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
