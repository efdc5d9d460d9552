"""A cheap HTTP/1.1 client for the load generator.

The load generator shares the two cores with the server under test, so every
microsecond it spends is taken from the platform. This client is a bare
`asyncio.Protocol` on a keep-alive connection: it writes prebuilt request
bytes and parses only what it needs (status, Content-Length or chunked
framing), noting when the response began and when a marker (the first token)
first appeared in the body.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    started: float  # when the request was written
    first_marker: float | None  # when the marker first showed up in the body
    finished: float

    @property
    def latency(self) -> float:
        return self.finished - self.started

    @property
    def ttft(self) -> float | None:
        return None if self.first_marker is None else self.first_marker - self.started


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.lost = False
        self._reset(b"")

    def _reset(self, marker: bytes) -> None:
        self.buffer = bytearray()
        self.status = 0
        self.head_done = False
        self.chunked = False
        self.length = -1
        self.body = bytearray()
        self.marker = marker
        self.marker_at: float | None = None
        self.scan_from = 0
        # Chunked decoding state: bytes left in the current chunk (-1: at a size line).
        self.chunk_left = -1

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.head_done:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ", 2)[1])
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    self.length = int(value)
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    self.chunked = True
            del self.buffer[: end + 4]
            self.head_done = True
        if self.chunked:
            self._dechunk()
        else:
            self.body += self.buffer
            self.buffer.clear()
        if self.marker and self.marker_at is None:
            if self.body.find(self.marker, max(0, self.scan_from - len(self.marker))) >= 0:
                self.marker_at = time.perf_counter()
            self.scan_from = len(self.body)
        if not self.chunked and self.length >= 0 and len(self.body) >= self.length:
            self._finish()

    def _dechunk(self) -> None:
        while True:
            if self.chunk_left < 0:
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(self.buffer[:end]).split(b";")[0], 16)
                if size == 0:
                    # Last chunk; trailers are not used by either server.
                    if len(self.buffer) < end + 4:
                        return
                    del self.buffer[: end + 4]
                    self._finish()
                    return
                del self.buffer[: end + 2]
                self.chunk_left = size
            if len(self.buffer) < self.chunk_left + 2:
                # Hand over what has arrived, so the marker is seen at once.
                take = min(len(self.buffer), self.chunk_left)
                self.body += self.buffer[:take]
                del self.buffer[:take]
                self.chunk_left -= take
                return
            self.body += self.buffer[: self.chunk_left]
            del self.buffer[: self.chunk_left + 2]
            self.chunk_left = -1

    def _finish(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(time.perf_counter())


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.protocol: _Protocol | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
        return protocol

    async def request(self, raw: bytes, *, marker: bytes = b"", timeout: float = 60.0) -> Reply:
        if self.protocol is None or self.protocol.lost:
            self.protocol = await self._connect()
        protocol = self.protocol
        protocol._reset(marker)
        loop = asyncio.get_running_loop()
        protocol.waiter = loop.create_future()
        started = time.perf_counter()
        assert protocol.transport is not None
        protocol.transport.write(raw)
        try:
            finished = await asyncio.wait_for(protocol.waiter, timeout)
        except BaseException:
            self.close()
            raise
        return Reply(
            status=protocol.status,
            body=bytes(protocol.body),
            started=started,
            first_marker=protocol.marker_at,
            finished=finished,
        )

    def close(self) -> None:
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.close()
        self.protocol = None


def build_request(
    method: str, host: str, port: int, path: str, body: bytes = b"", headers=None
) -> bytes:
    """The request's bytes, built once and written many times."""
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}:{port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
