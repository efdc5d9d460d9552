"""A minimal, fast OpenAI-compatible upstream for the benchmarks.

A raw `asyncio.Protocol` HTTP/1.1 server (keep-alive, no framework), so that
the fake costs a few tens of microseconds per request and is never what the
benchmark measures. It answers:

- `POST /v1/chat/completions`: OpenAI's streamed shape (`data:` chunks, the
  `include_usage` chunk, `[DONE]`), always streamed since the platform always
  asks for a stream. The model name sets the pace: `bench` answers every token
  at once; `bench-pace-<ms>-<n>` sends the first token at once and then one
  every <ms> milliseconds, <n> tokens in all (for TTFT and for streams that
  must stay open while others are opened).
- `GET /v1/models`, `GET /api/tags` (an Ollama listing with no models, so the
  platform's Ollama routing says "not mine" from its cache) and `GET /stats`
  (open streams and requests served, for the concurrent-stream test).

Run it as `python bench/upstream.py PORT`; it prints `ready` when listening.
"""

from __future__ import annotations

import asyncio
import json
import sys

REPLY_TOKENS = 8
CREATED = 1_700_000_000


def _chunk(model: str, delta: dict, finish: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _tail(model: str, prompt_tokens: int, completion_tokens: int) -> bytes:
    usage = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return (
        _chunk(model, {}, "stop")
        + b"data: "
        + json.dumps(usage, separators=(",", ":")).encode()
        + b"\n\ndata: [DONE]\n\n"
    )


def _pace(model: str) -> tuple[float, int]:
    """(seconds between tokens, tokens) from the model name."""
    if model.startswith("bench-pace-"):
        try:
            ms, count = model[len("bench-pace-") :].split("-")
            return float(ms) / 1000, max(1, int(count))
        except ValueError:
            pass
    return 0.0, REPLY_TOKENS


class Stats:
    open_streams = 0
    served = 0


def _json_response(payload: object) -> bytes:
    body = json.dumps(payload).encode()
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.streaming: asyncio.Task | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.streaming is not None:
            self.streaming.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = head.split(" ", 2)
            self.handle(method, path, body)

    def handle(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        Stats.served += 1
        if method == "POST" and path.endswith("/chat/completions"):
            request = json.loads(body)
            model = request.get("model") or "bench"
            words = sum(len(str(m.get("content", "")).split()) for m in request["messages"])
            delay, count = _pace(model)
            if delay <= 0:
                parts = [_chunk(model, {"role": "assistant", "content": "tok0"})]
                parts += [_chunk(model, {"content": f" tok{i}"}) for i in range(1, count)]
                parts.append(_tail(model, words, count))
                payload = b"".join(parts)
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
                )
                return
            self.streaming = asyncio.ensure_future(self.stream(model, words, delay, count))
            return
        if path.startswith("/v1/models"):
            self.transport.write(
                _json_response(
                    {
                        "object": "list",
                        "data": [{"id": "bench", "object": "model", "owned_by": "bench"}],
                    }
                )
            )
            return
        if path.startswith("/api/tags"):
            self.transport.write(_json_response({"models": []}))
            return
        if path.startswith("/api/version"):
            self.transport.write(_json_response({"version": "0.0.0"}))
            return
        if path.startswith("/stats"):
            self.transport.write(
                _json_response({"open_streams": Stats.open_streams, "served": Stats.served})
            )
            return
        self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")

    async def stream(self, model: str, words: int, delay: float, count: int) -> None:
        transport = self.transport
        assert transport is not None

        def chunk(data: bytes) -> None:
            transport.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        Stats.open_streams += 1
        try:
            transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            chunk(_chunk(model, {"role": "assistant", "content": "tok0"}))
            for i in range(1, count):
                await asyncio.sleep(delay)
                if transport.is_closing():
                    return
                chunk(_chunk(model, {"content": f" tok{i}"}))
            chunk(_tail(model, words, count))
            transport.write(b"0\r\n\r\n")
        finally:
            Stats.open_streams -= 1
            self.streaming = None


async def serve(port: int, *, duration_s: float = 3600.0) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    # Bounded: the fake never outlives a forgotten benchmark by more than this.
    async with server:
        await asyncio.sleep(duration_s)


def main() -> None:
    port = int(sys.argv[1])
    duration = float(sys.argv[2]) if len(sys.argv) > 2 else 3600.0
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    runner(serve(port, duration_s=duration))


if __name__ == "__main__":
    main()
