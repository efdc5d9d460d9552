"""Server-sent events, decoded from an HTTP body as it arrives.

The rules of the WHATWG event-stream format: lines end in LF, CRLF or CR; a
blank line dispatches the event; `data` lines join with LF; a line starting
with `:` is a comment; an event cut off by the end of the body is dropped.
No line or event size limit is imposed: an upstream's tool call arguments can
be long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str | None
    data: str


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[ServerSentEvent]:
    """The events of a body read as `chunks` of any size."""
    decoder = _Decoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.finish():
        yield event


class _Decoder:
    def __init__(self) -> None:
        self.buffer = b""
        self.event: str | None = None
        self.data: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        buffer = self.buffer + chunk
        if b"\r" in buffer:
            # A CR at the very end may be the first half of a CRLF: held back.
            held = buffer.endswith(b"\r")
            text = buffer[:-1] if held else buffer
            buffer = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if held else b"")
        if b"\n" not in buffer:
            self.buffer = buffer
            return []
        *lines, self.buffer = buffer.split(b"\n")
        return self._lines(lines)

    def finish(self) -> list[ServerSentEvent]:
        """The end of the body: a CR held back was a line end after all."""
        if not self.buffer.endswith(b"\r"):
            return []
        return self.feed(b"\n")

    def _lines(self, lines: list[bytes]) -> list[ServerSentEvent]:
        events = []
        for raw in lines:
            if not raw:
                if self.data:
                    events.append(ServerSentEvent(self.event, "\n".join(self.data)))
                self.event, self.data = None, []
                continue
            line = raw.decode("utf-8")
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                self.data.append(value)
            elif name == "event":
                self.event = value
            # `id` and `retry` mean nothing to a one-shot answer; others are ignored.
        return events
