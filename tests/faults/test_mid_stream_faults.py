"""An upstream that fails after the answer has begun: the socket cut mid-stream,
or an error event in the middle of the stream.

Nothing is retried once text has gone to the caller. The caller gets the text
so far and then the named error (an error status for the JSON API, an `error`
message at the end of the SSE stream and on the WebSocket); the request leaves
one usage record that counts what was streamed, marked estimated, and the
platform answers the next request normally.
"""

from __future__ import annotations

import pytest

from tests.fakes.server import Fault
from tests.faults.helpers import (
    CHANNELS,
    MODELS,
    ask,
    assert_connections_released,
    chat_body,
    settled_records,
)

pytestmark = pytest.mark.django_db(transaction=True)

CHUNKS_BEFORE = 3

# A connection cut mid-answer is an upstream fault on every backend.
CUT_CODE = dict.fromkeys(("anthropic", "openai", "ollama"), "UPSTREAM_ERROR")


def chat_calls(upstream) -> int:
    return sum(1 for r in upstream.requests if upstream.counts_for_faults(r))


async def fail_mid_answer(async_client, owner, token, faulty, backend, fault, code):
    upstream = getattr(faulty, backend)
    connections_before = upstream.open_connections
    for channel in CHANNELS:
        upstream.reset()
        upstream.script(fault)
        answer = await ask(channel, async_client, token, chat_body(backend))
        if channel == "json":
            assert (answer.status, answer.code) == (502, code)
        else:
            # The stream had started: its status stays 200, the error ends it.
            assert (answer.status, answer.code) == (200, code)
            assert len(answer.chunks) == CHUNKS_BEFORE
            assert answer.text == "The torch flickers"
        assert chat_calls(upstream) == 1, f"{channel}: retried after the first byte"

    records = await settled_records(owner, requests=len(CHANNELS))
    for record in records:
        assert (record.backend, record.outcome, record.error_code) == (backend, "error", code)
        # What was streamed is counted, and the record says it was estimated.
        assert record.completion_tokens >= CHUNKS_BEFORE
        assert record.prompt_tokens > 0 and record.estimated
    await assert_connections_released(upstream, connections_before)

    answer = await ask("json", async_client, token, chat_body(backend))
    assert (answer.status, answer.code) == (200, None)
    await settled_records(owner, requests=len(CHANNELS) + 1)


@pytest.mark.parametrize("backend", MODELS)
async def test_it_reports_a_socket_cut_mid_answer_without_retrying(
    async_client, owner, token, faulty, backend
):
    fault = Fault.mid_stream_drop(after_chunks=CHUNKS_BEFORE)
    await fail_mid_answer(async_client, owner, token, faulty, backend, fault, CUT_CODE[backend])


@pytest.mark.parametrize("backend", MODELS)
async def test_it_reports_an_error_event_mid_answer_without_retrying(
    async_client, owner, token, faulty, backend
):
    fault = Fault.mid_stream_error(after_chunks=CHUNKS_BEFORE)
    await fail_mid_answer(async_client, owner, token, faulty, backend, fault, "UPSTREAM_ERROR")
