"""One pooled upstream connection per backend, whatever happens to the requests
on it: answers read to their end hand the connection back for the next request
(no new TCP or TLS handshake each time), a retried rate limit does not cost one
either, and no request leaves a connection behind."""

from __future__ import annotations

import pytest

from tests.fakes.server import Fault
from tests.faults.helpers import CHANNELS, MODELS, ask, assert_connections_released, chat_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("backend", MODELS)
async def test_it_reuses_one_connection_for_request_after_request(
    async_client, owner, token, faulty, backend
):
    upstream = getattr(faulty, backend)
    before = upstream.open_connections
    for channel in (*CHANNELS, *CHANNELS):
        answer = await ask(channel, async_client, token, chat_body(backend))
        assert answer.code is None
        assert upstream.open_connections - before == 1, channel
    upstream.script(Fault.with_status(429, headers={"retry-after-ms": "5"}))
    assert (await ask("json", async_client, token, chat_body(backend))).code is None
    assert upstream.open_connections - before == 1
    await assert_connections_released(upstream, before)
