"""Limits that hold under concurrency, across two server processes.

Fifty chat requests at once (streamed and not) from one user with a daily limit,
spread over two platform processes that share the database, against an upstream
that spends every token it is allowed. However they interleave, settled usage
never passes the limit, the surplus is refused with QUOTA_EXCEEDED, and the
counters equal the sum of the usage records.

Runs on SQLite in the default suite and on PostgreSQL + Redis under
`make test-services`.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from django.db.models import Sum

from tests.factories import ApiTokenFactory, UserFactory
from tests.live import LiveServer
from usage.models import QuotaReservation, UsageRecord, UserQuota

DAILY_LIMIT = 3_000
REQUESTS = 50
MAX_TOKENS = 120


@pytest.fixture
def second_server(live, _anthropic_server, _openai_server, ollama_server):
    from tests.conftest import upstream_env

    server = LiveServer(
        upstream_env(anthropic=_anthropic_server, openai=_openai_server, ollama=ollama_server)
    ).start()
    yield server
    server.stop()


async def _one(client: httpx.AsyncClient, url: str, token: str, index: int) -> tuple[int, str]:
    body = {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": f"Tell me everything, part {index}"}],
        "max_tokens": MAX_TOKENS,
        "stream": index % 2 == 0,
    }
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("POST", url, json=body, headers=headers) as response:
        raw = (await response.aread()).decode()
    if response.status_code != 200:
        return response.status_code, json.loads(raw)["error"]["code"]
    if body["stream"]:
        last = json.loads(raw.strip().split("\n\n")[-1].removeprefix("data: "))
        return 200, last["type"]
    return 200, "ok"


def _fire(urls: list[str], token: str) -> list[tuple[int, str]]:
    async def main():
        limits = httpx.Limits(max_connections=REQUESTS)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(
                    _one(client, f"{urls[i % len(urls)]}/api/inference/chat", token, i)
                    for i in range(REQUESTS)
                )
            )

    return asyncio.run(main())


def _check_invariants(user, results):
    refused = [r for r in results if r[0] == 429]
    answered = [r for r in results if r[0] == 200]
    assert refused, "some requests must be refused once the limit is reached"
    assert answered, "requests within the limit must be answered"
    assert all(code == "QUOTA_EXCEEDED" for _, code in refused)
    assert all(kind in ("ok", "stream_end") for _, kind in answered)

    records = UsageRecord.objects.filter(user=user)
    settled = records.aggregate(total=Sum("total_tokens"))["total"]
    assert records.count() == len(answered)
    assert settled <= DAILY_LIMIT
    quota = UserQuota.objects.get(user=user)
    assert quota.day_used == settled
    assert quota.total_used == settled
    assert not QuotaReservation.objects.filter(user=user).exists()


def _setup(openai_upstream):
    openai_upstream.fill = True  # the upstream spends every token it may
    openai_upstream.token_delay = 0.001
    user = UserFactory(username="greedy", daily_token_limit=DAILY_LIMIT)
    return user, ApiTokenFactory(owner=user)


def test_it_never_lets_settled_usage_pass_the_daily_limit(live, second_server, openai_upstream):
    user, token = _setup(openai_upstream)
    results = _fire([live.url, second_server.url], token.secret)
    _check_invariants(user, results)


@pytest.mark.services
def test_it_holds_the_limit_on_postgresql_across_workers(live, second_server, openai_upstream):
    user, token = _setup(openai_upstream)
    results = _fire([live.url, second_server.url], token.secret)
    _check_invariants(user, results)


@pytest.mark.services
def test_it_shares_rate_limits_between_workers(live, second_server):
    user = UserFactory(username="hasty", rate_limit_per_minute=5)
    token = ApiTokenFactory(owner=user)
    statuses = []
    with httpx.Client(timeout=30) as client:
        for index in range(10):
            url = (live.url, second_server.url)[index % 2]
            response = client.post(
                f"{url}/api/inference/chat",
                json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {token.secret}"},
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
                assert int(response.headers["Retry-After"]) >= 1
    assert statuses.count(200) == 5
    assert statuses.count(429) == 5
