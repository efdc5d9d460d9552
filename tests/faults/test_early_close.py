"""An upstream that closes the socket before the answer's first token: before
sending anything at all, or right after the headers of a streamed answer.

Nothing has reached the caller yet, so the platform tries again (with backoff)
and the caller never notices a fault that passes. When every attempt is cut,
the caller gets CONNECTION_FAILED; either way the request leaves exactly one
usage record.
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


def chat_calls(upstream) -> int:
    return sum(1 for r in upstream.requests if upstream.counts_for_faults(r))


@pytest.mark.parametrize("backend", MODELS)
async def test_it_retries_a_socket_closed_before_the_first_token(
    async_client, owner, token, faulty, backend
):
    upstream = getattr(faulty, backend)
    connections_before = upstream.open_connections
    for channel in CHANNELS:
        upstream.reset()
        # Closed before a byte of the answer, then right after its headers.
        upstream.script(Fault.drop(), Fault.mid_stream_drop(after_chunks=0))
        answer = await ask(channel, async_client, token, chat_body(backend))
        assert (answer.status, answer.code) == (200, None), channel
        assert answer.text.startswith("The torch flickers")
        assert chat_calls(upstream) == 3

    records = await settled_records(owner, requests=len(CHANNELS))
    for record in records:
        # The retries are invisible in the ledger: one record, the true counts.
        assert (record.outcome, record.completion_tokens, record.estimated) == ("ok", 12, False)
    await assert_connections_released(upstream, connections_before)


@pytest.mark.parametrize("backend", MODELS)
async def test_it_reports_connection_failed_when_every_attempt_is_cut(
    async_client, owner, token, faulty, backend
):
    upstream = getattr(faulty, backend)
    connections_before = upstream.open_connections
    for channel in CHANNELS:
        upstream.reset()
        upstream.script(*[Fault.drop()] * 3)
        answer = await ask(channel, async_client, token, chat_body(backend))
        # A WebSocket has no status of its own; the HTTP answers are 502.
        assert answer.status == (200 if channel == "ws" else 502)
        assert answer.code == "CONNECTION_FAILED"
        assert answer.chunks == []
        assert chat_calls(upstream) == 3

    records = await settled_records(owner, requests=len(CHANNELS))
    for record in records:
        assert (record.outcome, record.error_code) == ("error", "CONNECTION_FAILED")
        # Refused before any generation: nothing to bill.
        assert record.total_tokens == 0
    await assert_connections_released(upstream, connections_before)

    answer = await ask("sse", async_client, token, chat_body(backend))
    assert (answer.status, answer.code) == (200, None)
    await settled_records(owner, requests=len(CHANNELS) + 1)
