"""A small HTTP/1.1 server on loopback that the fake upstreams are built on.

It runs its own event loop in a thread, so sync SDK clients, async SDK clients
and the platform's own live server can all talk to it over a real socket. A
fake subclasses `FakeUpstream` and implements `handle(request, response)`.

Faults are scripted per request: `server.script(Fault.status(429, ...))` makes
the next request fail that way; requests after the script run normally.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    """What to do to one request instead of (or while) answering it normally."""

    kind: str  # status | drop | hang | garbage | mid_stream_error | mid_stream_drop
    status: int = 500
    body: Any = None  # for `status`: a dict (sent as JSON) or text
    headers: dict[str, str] = field(default_factory=dict)
    after_chunks: int = 0  # for mid_stream_*: how many content chunks go out first
    seconds: float = 3600.0  # for hang
    message: str = "Overloaded"

    @classmethod
    def with_status(cls, status: int, body: Any = None, headers: dict | None = None) -> Fault:
        return cls("status", status=status, body=body, headers=headers or {})

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def hang(cls, seconds: float = 3600.0) -> Fault:
        """Accept the request and answer nothing for `seconds`."""
        return cls("hang", seconds=seconds)

    @classmethod
    def garbage(cls) -> Fault:
        """Answer 200 with a body that is not the protocol at all."""
        return cls("garbage")

    @classmethod
    def mid_stream_error(cls, after_chunks: int = 2, message: str = "Overloaded") -> Fault:
        return cls("mid_stream_error", after_chunks=after_chunks, message=message)

    @classmethod
    def mid_stream_drop(cls, after_chunks: int = 2) -> Fault:
        return cls("mid_stream_drop", after_chunks=after_chunks)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class ConnectionDropped(Exception):
    pass


class Response:
    """Writes one HTTP response: whole (`send_json`, `send_text`) or streamed."""

    def __init__(self, writer: asyncio.StreamWriter, server: FakeUpstream) -> None:
        self._writer = writer
        self._server = server
        self.started = False
        self.keep_alive = True

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}.get(
            status, "Status"
        )
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def send(self, status: int, body: bytes, content_type: str, headers=None) -> None:
        all_headers = {"content-type": content_type, "content-length": str(len(body))}
        all_headers.update(headers or {})
        self.started = True
        self._writer.write(self._head(status, all_headers) + body)
        await self._writer.drain()

    async def send_json(self, status: int, payload: Any, headers=None) -> None:
        await self.send(status, json.dumps(payload).encode(), "application/json", headers)

    async def send_text(self, status: int, text: str, headers=None) -> None:
        await self.send(status, text.encode(), "text/plain; charset=utf-8", headers)

    async def start_stream(self, status: int, content_type: str, headers=None) -> None:
        all_headers = {"content-type": content_type, "transfer-encoding": "chunked"}
        all_headers.update(headers or {})
        self.started = True
        self._writer.write(self._head(status, all_headers))
        await self._writer.drain()

    async def write(self, data: bytes | str) -> None:
        """One chunk of a streamed body, after the server's token delay."""
        if isinstance(data, str):
            data = data.encode()
        if self._server.token_delay:
            await asyncio.sleep(self._server.token_delay)
        if self._writer.is_closing():
            raise ConnectionDropped
        self._writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        try:
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise ConnectionDropped from exc

    async def end_stream(self) -> None:
        self._writer.write(b"0\r\n\r\n")
        await self._writer.drain()

    def drop(self) -> None:
        """Close the socket abruptly, mid-response or before it."""
        self.keep_alive = False
        transport = self._writer.transport
        transport.abort()


class FakeUpstream:
    """Base of the fakes: socket handling, fault script, request log, counters."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.latency = 0.0  # seconds before the response starts
        self.token_delay = 0.0  # seconds before each streamed chunk
        self._script: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self.open_connections = 0
        self.completed_streams = 0
        self.aborted_streams = 0
        self.port = 0

    # --- life cycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def reset(self) -> None:
        """Back to normal behaviour, forgetting the log (between tests)."""
        with self._lock:
            self.requests.clear()
            self._script.clear()
        self.latency = 0.0
        self.token_delay = 0.0
        self.completed_streams = 0
        self.aborted_streams = 0
        self.reset_options()

    def reset_options(self) -> None:
        """Subclasses reset their own switches here."""

    # --- faults -------------------------------------------------------------------

    def script(self, *faults: Fault) -> None:
        """The next requests meet these faults, one each, in order."""
        with self._lock:
            self._script.extend(faults)

    def next_fault(self) -> Fault | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    # --- serving ------------------------------------------------------------------

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    await reader.readline()
                    break
                body += await reader.readexactly(size)
                await reader.readline()
        parts = urlsplit(target)
        return Request(method, parts.path, parse_qs(parts.query), headers, body)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        try:
            while True:
                try:
                    request = await self._read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    break
                if request is None:
                    break
                with self._lock:
                    self.requests.append(request)
                response = Response(writer, self)
                try:
                    await self._dispatch(request, response)
                except ConnectionDropped:
                    self.aborted_streams += 1
                    break
                if not response.keep_alive or writer.is_closing():
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open_connections -= 1
            if not writer.is_closing():
                writer.close()

    async def _dispatch(self, request: Request, response: Response) -> None:
        fault = self.next_fault() if self.counts_for_faults(request) else None
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None:
            if fault.kind == "status":
                body = fault.body if fault.body is not None else self.error_body(fault.status)
                if isinstance(body, str):
                    await response.send_text(fault.status, body, fault.headers)
                else:
                    await response.send_json(fault.status, body, fault.headers)
                return
            if fault.kind == "drop":
                response.drop()
                return
            if fault.kind == "hang":
                await asyncio.sleep(fault.seconds)
                response.drop()
                return
            if fault.kind == "garbage":
                await response.send(200, b"<html>definitely not JSON", "application/json")
                return
        await self.handle(request, response, fault)

    def counts_for_faults(self, request: Request) -> bool:
        """Whether a scripted fault applies to this request (chat calls, say)."""
        return True

    def error_body(self, status: int) -> Any:
        """The protocol's error body for a bare status fault."""
        return {"error": f"status {status}"}

    async def handle(self, request: Request, response: Response, fault: Fault | None) -> None:
        raise NotImplementedError


# --- shared reply generator ----------------------------------------------------------

_REPLY = (
    "The torch flickers as you step into the hall . Somewhere below , water drips onto "
    "old stone , and a cold draft carries the smell of rain . A door stands ajar to the "
    "north , and a narrow stair winds down into the dark ."
)
REPLY_WORDS = _REPLY.split(" ")


def count_words(text: str) -> int:
    return len(text.split())


def reply_tokens(max_tokens: int, *, fill: bool, length: int) -> tuple[list[str], bool]:
    """The fake's reply, one token per word, and whether `max_tokens` cut it."""
    want = max_tokens if fill else min(length, max_tokens)
    words = [REPLY_WORDS[i % len(REPLY_WORDS)] for i in range(want)]
    tokens = [w if i == 0 else " " + w for i, w in enumerate(words)]
    return tokens, want >= max_tokens and (fill or length >= max_tokens)
