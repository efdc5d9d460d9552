"""Django's ASGI handler, without a thread for the requests that need none.

Django's `ASGIHandler` gives every request a thread of its own for sync code
(`ThreadSensitiveContext`): a new thread, started by the request's first
thread-sensitive hop and joined when it ends. Every request makes at least two
such hops, both for Django's request signals (`request_started`, and
`request_finished` from `response.close()`), so every request starts and joins a
thread even when nothing else in it is sync. On a small API call that is most of
the handler's cost (docs/performance.md).

This handler keeps the model (one thread per request for its sync code, never
shared by two requests at once) and changes two things:

- The request's thread comes from a pool of single-thread executors, leased for
  the request and handed back after it (`ThreadSensitiveContext(executor=…)`), so
  a thread is started once and serves many requests in turn, as a WSGI server's
  worker threads do.
- The request signals' sync receivers run on the event loop unless the request
  used its thread. Django's receivers (`close_old_connections`, `reset_queries`,
  `close_caches`, `reset_urlconf`) act on the connections and state of the
  thread they run in: the event loop holds no database connection (Django
  refuses queries there), and a thread that the request never used has nothing of
  the request's to close. A request that did use its thread has its
  `request_finished` run there, as Django does. `request_started` always runs on
  the loop: its receivers clean up the thread of a request that has not run any
  sync code yet, and each leased thread was cleaned by its previous request's
  `request_finished` (persistent connections are off: `CONN_MAX_AGE` is 0).

`tests/config/test_handler.py` pins the receivers this relies on, so a new one is
looked at before it runs on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import asgi
from django.urls import set_script_prefix

# Idle request threads kept for the next requests; more are made when more
# requests run sync code at once, and those beyond this are let go.
IDLE_THREADS = 32


class RequestThread(ThreadPoolExecutor):
    """One thread for one request at a time; notes whether the request used it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        self.used = False

    def submit(self, fn, /, *args, **kwargs):
        self.used = True
        return super().submit(fn, *args, **kwargs)


class RequestThreads:
    """The pool of request threads. Leased and returned on the event loop's
    thread; the lock keeps it right if more than one loop shares a handler."""

    def __init__(self, idle: int = IDLE_THREADS) -> None:
        self._idle: list[RequestThread] = []
        self._max_idle = idle
        self._lock = threading.Lock()

    def lease(self) -> RequestThread:
        with self._lock:
            thread = self._idle.pop() if self._idle else None
        if thread is None:
            thread = RequestThread()
        thread.used = False
        return thread

    def give_back(self, thread: RequestThread) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(thread)
                return
        thread.shutdown(wait=False)


class ASGIHandler(asgi.ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self.request_threads = RequestThreads()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = self.request_threads.lease()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send, thread)
        finally:
            self.request_threads.give_back(thread)

    async def handle(self, scope, receive, send, thread: RequestThread | None = None):
        """Django's `ASGIHandler.handle` (5.2), with the request signals sent as
        described in the module's docstring."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(asgi.get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await self._close(error_response, thread)
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            # A caller who disconnects while it is sent: nothing more to do.
            with contextlib.suppress(asyncio.CancelledError):
                await self.send_response(response, send)
            return response

        # Catch a disconnect while the response is made (as Django does).
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await self._finished(thread)
        else:
            await self._close(response, thread)
        body_file.close()

    async def _close(self, response, thread: RequestThread | None) -> None:
        """`response.close()` (which sends `request_finished`) in the request's
        thread if the request used it, else on the loop."""
        if thread is None or thread.used:
            await sync_to_async(response.close)()
        else:
            response.close()

    async def _finished(self, thread: RequestThread | None) -> None:
        if thread is None or thread.used:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            signals.request_finished.send(sender=self.__class__)


def get_asgi_application() -> ASGIHandler:
    """`django.core.asgi.get_asgi_application`, with this handler."""
    import django

    django.setup(set_prefix=False)
    return ASGIHandler()
