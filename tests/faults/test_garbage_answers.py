"""An upstream that answers with something that is not its protocol at all: a
200 whose body is HTML, or an error status whose body is not JSON.

The caller gets UPSTREAM_ERROR (never a bare 500), the request is recorded once
with nothing billed, and the platform answers the next request normally.
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

HTML_ERROR = "<html><body><h1>502 Bad Gateway</h1></body></html>"


async def answer_garbage(async_client, owner, token, faulty, backend, faults):
    upstream = getattr(faulty, backend)
    connections_before = upstream.open_connections
    for channel in CHANNELS:
        upstream.reset()
        upstream.script(*faults)
        answer = await ask(channel, async_client, token, chat_body(backend))
        assert answer.status == (200 if channel == "ws" else 502), channel
        assert answer.code == "UPSTREAM_ERROR"
        assert answer.chunks == []

    records = await settled_records(owner, requests=len(CHANNELS))
    for record in records:
        assert (record.outcome, record.error_code, record.total_tokens) == (
            "error",
            "UPSTREAM_ERROR",
            0,
        )
    await assert_connections_released(upstream, connections_before)

    upstream.reset()  # backends that do not retry such an answer left faults unspent
    answer = await ask("json", async_client, token, chat_body(backend))
    assert (answer.status, answer.code) == (200, None)


@pytest.mark.parametrize("backend", MODELS)
async def test_it_reports_an_answer_in_no_known_protocol(
    async_client, owner, token, faulty, backend
):
    await answer_garbage(async_client, owner, token, faulty, backend, [Fault.garbage()] * 3)


@pytest.mark.parametrize("backend", MODELS)
async def test_it_reports_an_error_status_whose_body_is_not_json(
    async_client, owner, token, faulty, backend
):
    faults = [Fault.with_status(502, body=HTML_ERROR)] * 3
    await answer_garbage(async_client, owner, token, faulty, backend, faults)
