"""Long-lived threads that run the gateway's database calls for event loops.

`loop.run_in_executor` with a `ThreadPoolExecutor` costs the loop more than a
short query does: a `concurrent.futures.Future` (with its condition variable)
chained to an asyncio one, and on every submit an idle-worker semaphore that
the worker thread holds the lock of as it finishes each call, so under load
the loop blocks on it and the two threads trade the GIL. Here a call is a tuple
on a `queue.SimpleQueue` and its result comes back by `call_soon_threadsafe`
straight into the caller's asyncio future.

A call cannot be taken back once queued (as with an executor): when its caller
is cancelled, it still runs and its result is dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any


class DatabaseThreads:
    """`size` daemon threads taking calls, in order, from one queue; started on
    the first call."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return bool(self._threads)

    def call(self, fn: Callable[..., Any], /, *args: Any) -> asyncio.Future:
        """`fn(*args)` on one of the threads; the future to await for its result."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._threads:
            self._start()
        self._queue.put((loop, future, fn, args))
        return future

    def call_sync(self, fn: Callable[..., Any], /, *args: Any, timeout: float = 10.0) -> Any:
        """`fn(*args)` on one of the threads, waited for from sync code."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        if not self._threads:
            self._start()
        self._queue.put((None, future, fn, args))
        return future.result(timeout=timeout)

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._serve, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _serve(self) -> None:
        get = self._queue.get
        while True:
            _run(*get())


def _run(
    loop: asyncio.AbstractEventLoop | None,
    future: asyncio.Future | concurrent.futures.Future,
    fn: Callable[..., Any],
    args: tuple,
) -> None:
    try:
        result = fn(*args)
    except BaseException as exc:  # the caller's to handle, as with an executor
        outcome: tuple[Any, BaseException | None] = (None, exc)
    else:
        outcome = (result, None)
    if loop is None:
        _resolve_sync(future, *outcome)  # type: ignore[arg-type]
        return
    # A closed loop (RuntimeError): nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, future, *outcome)


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _resolve_sync(
    future: concurrent.futures.Future, result: Any, error: BaseException | None
) -> None:
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
