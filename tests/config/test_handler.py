"""The ASGI handler (config/handler.py): a thread per request only when the
request runs sync code, leased from a pool; the request signals where Django
would send them."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core import signals

from config.handler import ASGIHandler
from tests.config import handler_urls

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def handler(settings):
    settings.ROOT_URLCONF = "tests.config.handler_urls"
    handler_urls.seen.clear()
    handler_urls.release.clear()
    return ASGIHandler()


@pytest.fixture
def finished_in():
    """The names of the threads `request_finished` was sent in."""
    names: list[str] = []

    def receiver(**kwargs):
        names.append(threading.current_thread().name)

    signals.request_finished.connect(receiver)
    yield names
    signals.request_finished.disconnect(receiver)


def scope(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def get(handler, path: str) -> dict:
    app = ApplicationCommunicator(handler, scope(path))
    await app.send_input({"type": "http.request", "body": b""})
    start = await app.receive_output(10)
    body = await app.receive_output(10)
    await app.wait(10)
    assert start["status"] == 200, body
    return json.loads(body["body"])


def test_the_request_signal_receivers_are_the_ones_it_was_written_for():
    """These act on the thread they run in, which is why they may run on the
    loop for a request that ran no sync code. A new receiver needs a look."""

    def names(signal):
        sync, async_ = signal._live_receivers(ASGIHandler)
        return {f"{r.__module__}.{r.__qualname__}" for r in [*sync, *async_]}

    assert names(signals.request_started) == {
        "django.db.reset_queries",
        "django.db.close_old_connections",
    }
    assert names(signals.request_finished) == {
        "django.db.close_old_connections",
        "django.core.cache.close_caches",
        "django.core.handlers.base.reset_urlconf",
    }


async def test_a_request_without_sync_code_starts_no_thread(handler, finished_in):
    before = threading.active_count()
    answer = await get(handler, "/quiet")
    loop_thread = threading.current_thread().name
    assert answer["thread"] == loop_thread
    assert finished_in == [loop_thread]
    assert threading.active_count() == before


async def test_sync_code_runs_in_the_requests_thread_which_closes_its_connection(
    handler, finished_in
):
    answer = await get(handler, "/sync-query")
    assert answer["thread"].startswith("request")
    assert finished_in == [answer["thread"]]
    assert handler_urls.seen["connection"].connection is None  # closed at the end


async def test_the_async_orm_uses_the_requests_thread_too(handler, finished_in):
    answer = await get(handler, "/async-query")
    assert answer["thread"] == threading.current_thread().name
    assert finished_in and finished_in[0].startswith("request")


async def test_a_thread_serves_one_request_at_a_time_and_is_used_again(handler):
    first = await get(handler, "/sync-query")
    second = await get(handler, "/sync-query")
    assert first["ident"] == second["ident"]

    # Two at once: two threads.
    pending = [asyncio.ensure_future(get(handler, "/blocking")) for _ in range(2)]
    for _ in range(200):
        if len(handler_urls.seen.get("blocking", [])) == 2:
            break
        await asyncio.sleep(0.01)
    handler_urls.release.set()
    answers = await asyncio.gather(*pending)
    assert len({a["ident"] for a in answers}) == 2


async def test_a_caller_who_leaves_mid_stream_still_ends_the_request(handler, finished_in):
    app = ApplicationCommunicator(handler, scope("/endless"))
    await app.send_input({"type": "http.request", "body": b""})
    assert (await app.receive_output(10))["status"] == 200
    assert (await app.receive_output(10))["body"] == b"data: first\n\n"
    await app.send_input({"type": "http.disconnect"})
    await app.wait(10)
    assert finished_in == [threading.current_thread().name]
