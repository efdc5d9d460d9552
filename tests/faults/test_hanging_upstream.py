"""An upstream that accepts the request and then says nothing.

The caller gets INFERENCE_TIMEOUT after the configured timeout, not whenever the
upstream gives up; the request is recorded once, its reservation freed, and no
task or connection is left waiting on the silent upstream.
"""

from __future__ import annotations

import time

import pytest

from tests.fakes.server import Fault
from tests.faults.helpers import (
    CHANNELS,
    MODELS,
    ask,
    assert_connections_released,
    assert_no_new_tasks,
    chat_body,
    close_pools,
    settled_records,
    tasks_now,
)

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_S = 0.25
HANG_S = 1.0  # the fake then gives up too, so its connection count can settle


@pytest.mark.parametrize("backend", MODELS)
async def test_it_times_out_a_silent_upstream(
    async_client, owner, token, faulty, settings, backend
):
    upstream = getattr(faulty, backend)
    connections_before = upstream.open_connections
    tasks_before = tasks_now()
    # A first answer, so the timings below are the upstream's alone (a backend's
    # SDK loads on its first request).
    assert (await ask("json", async_client, token, chat_body(backend))).code is None
    await close_pools()  # the settings change below replaces the backends and their pools
    settings.INFERENCE_TIMEOUT_S = TIMEOUT_S
    for channel in CHANNELS:
        upstream.reset()
        upstream.script(Fault.hang(HANG_S))
        started = time.monotonic()
        answer = await ask(channel, async_client, token, chat_body(backend))
        assert time.monotonic() - started < HANG_S, "waited for the upstream, not the timeout"
        assert answer.status == (200 if channel == "ws" else 504)
        assert answer.code == "INFERENCE_TIMEOUT"

    records = await settled_records(owner, requests=1 + len(CHANNELS))
    assert {(r.outcome, r.error_code) for r in records[1:]} == {("error", "INFERENCE_TIMEOUT")}
    await assert_no_new_tasks(tasks_before)
    await assert_connections_released(upstream, connections_before, timeout=HANG_S + 2)

    settings.INFERENCE_TIMEOUT_S = 10
    answer = await ask("ws", async_client, token, chat_body(backend))
    assert (answer.status, answer.code) == (200, None)
