"""Storms: many callers at once while the upstream answers 429 or 529 with
`retry-after-ms`, over the JSON API, SSE and the WebSocket together.

Every caller gets an answer or the named error, never a bare 500 or a hang;
every request leaves exactly one usage record and no reservation; the platform
makes no attempt beyond its retry budget; no task outlives the storm and no
upstream connection is left open once the pools close; and the next request is
answered normally.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.server import Fault
from tests.faults.helpers import (
    CHANNELS,
    MODELS,
    ask,
    assert_connections_released,
    assert_no_new_tasks,
    chat_body,
    settled_records,
    tasks_now,
)

pytestmark = pytest.mark.django_db(transaction=True)

CALLERS = 12
ATTEMPTS = 3  # INFERENCE_MAX_RETRIES (2) + 1


def busy(status: int) -> Fault:
    return Fault.with_status(status, headers={"retry-after-ms": "10"})


def chat_calls(upstream) -> int:
    return sum(1 for r in upstream.requests if upstream.counts_for_faults(r))


async def storm(async_client, token, backend: str) -> list:
    """CALLERS requests at once, spread over the three channels."""
    return await asyncio.gather(
        *(
            ask(CHANNELS[i % len(CHANNELS)], async_client, token, chat_body(backend, f"Turn {i}"))
            for i in range(CALLERS)
        )
    )


def expected_failure(channel: str):
    # The HTTP answers carry the status; on the WebSocket it is the message.
    return (200 if channel == "ws" else 502, "UPSTREAM_ERROR")


@pytest.mark.parametrize(("backend", "status"), [(b, s) for b in MODELS for s in (429, 529)])
async def test_it_fails_every_caller_cleanly_when_the_storm_outlasts_the_retries(
    async_client, owner, token, faulty, backend, status
):
    upstream = getattr(faulty, backend)
    connections_before = upstream.open_connections
    tasks_before = tasks_now()
    upstream.script(*[busy(status)] * (CALLERS * ATTEMPTS))

    answers = await storm(async_client, token, backend)

    for i, answer in enumerate(answers):
        assert (answer.status, answer.code) == expected_failure(CHANNELS[i % len(CHANNELS)])
    assert chat_calls(upstream) == CALLERS * ATTEMPTS
    records = await settled_records(owner, requests=CALLERS)
    assert {(r.outcome, r.error_code, r.total_tokens) for r in records} == {
        ("error", "UPSTREAM_ERROR", 0)
    }
    await assert_connections_released(upstream, connections_before)
    await assert_no_new_tasks(tasks_before)

    answer = await ask("sse", async_client, token, chat_body(backend))
    assert (answer.status, answer.code) == (200, None)


@pytest.mark.parametrize("backend", MODELS)
async def test_it_rides_out_a_storm_that_ends_within_the_retries(
    async_client, owner, token, faulty, backend
):
    upstream = getattr(faulty, backend)
    connections_before = upstream.open_connections
    tasks_before = tasks_now()
    faults = 2 * CALLERS
    upstream.script(*[busy((429, 529)[i % 2]) for i in range(faults)])

    answers = await storm(async_client, token, backend)

    answered = [a for a in answers if a.code is None]
    for i, answer in enumerate(answers):
        if answer.code is not None:
            assert (answer.status, answer.code) == expected_failure(CHANNELS[i % len(CHANNELS)])
        else:
            assert answer.status == 200 and answer.text.startswith("The torch flickers")
    # A caller fails only after spending ATTEMPTS faults, so most get through.
    assert len(answered) >= CALLERS - faults // ATTEMPTS
    # Every fault was spent, and each answered caller made one clean attempt.
    assert chat_calls(upstream) == faults + len(answered)
    records = await settled_records(owner, requests=CALLERS)
    assert sorted(r.outcome for r in records) == sorted(
        "ok" if a.code is None else "error" for a in answers
    )
    assert all(r.completion_tokens == 12 for r in records if r.outcome == "ok")
    assert (upstream.completed_streams, upstream.aborted_streams) == (len(answered), 0)
    await assert_connections_released(upstream, connections_before)
    await assert_no_new_tasks(tasks_before)

    answer = await ask("json", async_client, token, chat_body(backend))
    assert (answer.status, answer.code) == (200, None)
