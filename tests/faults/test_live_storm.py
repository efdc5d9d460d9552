"""A storm against the real server: Daphne in its own process, real sockets,
while every upstream answers 429 and 529 with `retry-after-ms`.

Callers over the JSON API, SSE and the WebSocket all get an answer or the named
error; the ledger holds one record per request and no reservation; the server
process is still up, logs no unhandled error, holds no more upstream
connections than its pools may keep, and answers the next requests normally.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.factories import ApiTokenFactory
from tests.fakes.server import Fault
from tests.faults.helpers import CHANNELS, MODELS, chat_body
from usage.models import QuotaReservation, UsageRecord, UserQuota

pytestmark = pytest.mark.django_db(transaction=True)

CALLERS = 30
BACKENDS = tuple(MODELS)
FAULTS_PER_CALLER = 2  # within the retry budget of three attempts
UNHANDLED = ("Traceback", "Task exception was never retrieved", "Task was destroyed")


async def over_http(client: httpx.AsyncClient, url: str, secret: str, body: dict, stream: bool):
    headers = {"Authorization": f"Bearer {secret}"}
    response = await client.post(
        f"{url}/api/inference/chat", json={**body, "stream": stream}, headers=headers
    )
    if response.status_code != 200:
        return response.status_code, response.json()["error"]["code"]
    if not stream:
        return 200, None
    frames = [f for f in response.text.split("\n\n") if f.startswith("data: ")]
    last = json.loads(frames[-1].removeprefix("data: "))
    return 200, last["error"]["code"] if last["type"] == "error" else None


async def over_websocket(ws_url: str, secret: str, body: dict):
    async with connect(
        f"{ws_url}/ws/inference/", subprotocols=["vgp.v1", f"bearer.{secret}"]
    ) as ws:
        await ws.send(json.dumps({"type": "inference", "id": "r", "request": body}))
        code = None
        async with asyncio.timeout(30):
            while (message := json.loads(await ws.recv()))["type"] != "token_usage":
                if message["type"] == "error":
                    code = message["error"]["code"]
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv()) == {"type": "pong"}
    return 200, code


def storm(live, secret: str, callers: int) -> list[tuple[str, int, str | None]]:
    async def one(client, i):
        backend, channel = BACKENDS[i % len(BACKENDS)], CHANNELS[(i // 3) % len(CHANNELS)]
        body = chat_body(backend, f"Turn {i}")
        if channel == "ws":
            status, code = await over_websocket(live.ws_url, secret, body)
        else:
            status, code = await over_http(client, live.url, secret, body, channel == "sse")
        return channel, status, code

    async def main():
        limits = httpx.Limits(max_connections=callers)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(callers)))

    return asyncio.run(main())


def test_it_keeps_serving_through_a_storm(
    live, owner, anthropic_upstream, openai_upstream, ollama_upstream
):
    upstreams = {
        "anthropic": anthropic_upstream,
        "openai": openai_upstream,
        "ollama": ollama_upstream,
    }
    token = ApiTokenFactory(owner=owner)
    log_start = len(live.log())
    connections_before = {name: up.open_connections for name, up in upstreams.items()}
    per_backend = CALLERS // len(BACKENDS)
    for name, upstream in upstreams.items():
        # The Ollama host would be set aside on a 5xx (its cool-down is the
        # server's default here), so it gets rate limits only.
        statuses = (429,) if name == "ollama" else (429, 529)
        upstream.script(
            *[
                Fault.with_status(statuses[i % len(statuses)], headers={"retry-after-ms": "10"})
                for i in range(FAULTS_PER_CALLER * per_backend)
            ]
        )

    results = storm(live, token.secret, CALLERS)

    for channel, status, code in results:
        assert code in (None, "UPSTREAM_ERROR"), (channel, status, code)
        assert status == (200 if code is None or channel == "ws" else 502)
    assert any(code is None for _, _, code in results)
    records = UsageRecord.objects.filter(user=owner)
    assert records.count() == CALLERS
    assert not QuotaReservation.objects.filter(user=owner).exists()
    assert UserQuota.objects.get(user=owner).total_used == sum(
        records.values_list("total_tokens", flat=True)
    )
    # Each caller holds at most one upstream connection at a time, so the pools
    # keep at most one idle connection per caller that used the upstream: the
    # OpenAI callers too ask the Ollama host for its models while routing.
    pooled = {
        name: up.open_connections - connections_before[name] for name, up in upstreams.items()
    }
    assert pooled["anthropic"] <= per_backend
    assert pooled["openai"] <= per_backend
    assert pooled["ollama"] <= 2 * per_backend

    assert live.process is not None and live.process.poll() is None
    after = storm(live, token.secret, len(BACKENDS) * len(CHANNELS))
    assert all((status, code) == (200, None) for _, status, code in after), after
    for name, upstream in upstreams.items():
        # The next calls reuse pooled connections instead of opening more.
        opened = upstream.open_connections - connections_before[name]
        assert opened <= max(pooled[name], len(CHANNELS))
    log = live.log()[log_start:]
    assert not any(marker in log for marker in UNHANDLED), log[-3000:]
