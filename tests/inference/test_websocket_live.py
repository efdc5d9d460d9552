"""The WebSocket protocol against the real server (Daphne in its own process),
with a real WebSocket client, as a game would use it."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.factories import ApiTokenFactory, UserFactory
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


def request(request_id: str, text: str, **extra) -> str:
    return json.dumps(
        {
            "type": "inference",
            "id": request_id,
            "request": {"messages": [{"role": "user", "content": text}], **extra},
        }
    )


async def next_of(ws, kind: str, request_id: str | None = None, timeout: float = 15) -> list:
    seen = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            seen.append(message)
            if message["type"] == kind and (request_id is None or message.get("id") == request_id):
                return seen


def test_it_speaks_the_protocol_over_a_real_socket(live, openai_upstream):
    openai_upstream.reply_length = 400
    openai_upstream.token_delay = 0.02
    user = UserFactory(username="player")
    token = ApiTokenFactory(owner=user)

    async def scenario():
        url = f"{live.ws_url}/ws/inference/"
        async with connect(url, subprotocols=["vgp.v1", f"bearer.{token.secret}"]) as ws:
            assert ws.subprotocol == "vgp.v1"
            # Two requests at once on one socket, told apart by id; the slow
            # one is cancelled while the other finishes.
            await ws.send(request("slow", "Tell me a long tale", model="gpt-test", max_tokens=400))
            await ws.send(request("quick", "Hello", model="demo", max_tokens=20))
            ends, cancelled = {}, False
            async with asyncio.timeout(15):
                while len(ends) < 2:
                    message = json.loads(await ws.recv())
                    slow_chunk = message["type"] == "stream_chunk" and message["id"] == "slow"
                    if slow_chunk and not cancelled:
                        await ws.send(json.dumps({"type": "cancel", "id": "slow"}))
                        cancelled = True
                    if message["type"] == "stream_end":
                        ends[message["id"]] = message
            assert ends["quick"]["finish_reason"] in ("end_turn", "max_tokens")
            assert ends["slow"]["finish_reason"] == "cancelled"

            # Malformed messages are answered, and the socket stays open.
            await ws.send("not json")
            assert (await next_of(ws, "error"))[-1]["error"]["code"] == "INVALID_REQUEST"
            await ws.send(json.dumps({"type": "inference", "id": "bad", "request": {}}))
            error = (await next_of(ws, "error", "bad"))[-1]
            assert error["error"]["code"] == "INVALID_REQUEST"
            await ws.send(json.dumps({"type": "ping"}))
            assert (await next_of(ws, "pong"))[-1] == {"type": "pong"}

    asyncio.run(scenario())
    outcomes = sorted(UsageRecord.objects.filter(user=user).values_list("outcome", flat=True))
    assert outcomes == ["cancelled", "ok"]


def test_it_closes_with_4401_for_a_bad_token(live):
    async def scenario():
        url = f"{live.ws_url}/ws/inference/?token=vgp_wrong"
        try:
            async with connect(url) as ws:
                await ws.recv()
        except InvalidStatus as exc:
            # Closed before the handshake completed: Daphne answers 403.
            return exc.response.status_code
        except Exception as exc:  # closed after accepting
            return getattr(getattr(exc, "rcvd", None), "code", None)
        return None

    assert asyncio.run(scenario()) in (403, 4401)


def test_it_sends_quota_errors_by_id(live):
    user = UserFactory(username="thrifty", daily_token_limit=10)
    token = ApiTokenFactory(owner=user)

    async def scenario():
        url = f"{live.ws_url}/ws/inference/"
        async with connect(url, subprotocols=["vgp.v1", f"bearer.{token.secret}"]) as ws:
            await ws.send(request("q", "Tell me everything about dragons"))
            return (await next_of(ws, "error", "q"))[-1]

    message = asyncio.run(scenario())
    assert message["error"]["code"] == "QUOTA_EXCEEDED"
    assert message["error"]["limit"] == "daily"
