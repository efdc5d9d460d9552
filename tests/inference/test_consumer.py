"""The WebSocket protocol of /ws/inference/, through Channels' communicator."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from tests.inference.helpers import make_token, user_says
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(token=None, *, query: str = "", protocols=None) -> WebsocketCommunicator:
    if protocols is None:
        protocols = ["vgp.v1", f"bearer.{token.secret}"] if token is not None else ["vgp.v1"]
    communicator = WebsocketCommunicator(
        application, f"/ws/inference/{query}", subprotocols=protocols
    )
    connected, detail = await communicator.connect()
    communicator.connected, communicator.detail = connected, detail
    return communicator


async def receive_until(communicator, kind: str, request_id=None, timeout=10) -> list[dict]:
    messages = []
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        messages.append(message)
        if message["type"] == kind and (request_id is None or message.get("id") == request_id):
            return messages


def inference(request_id: str, text: str = "Tell me a story", **extra) -> dict:
    return {
        "type": "inference",
        "id": request_id,
        "request": {"messages": user_says(text), **extra},
    }


async def test_it_refuses_a_socket_without_credentials(db):
    communicator = await connect()
    assert communicator.connected is False
    assert communicator.detail == 4401


async def test_it_refuses_a_bad_token(db):
    communicator = await connect(protocols=["vgp.v1", "bearer.vgp_wrong"])
    assert (communicator.connected, communicator.detail) == (False, 4401)


async def test_it_selects_vgp_v1_when_a_browser_offers_it(owner):
    token = await make_token(owner)
    communicator = await connect(token)
    assert communicator.connected is True
    assert communicator.detail == "vgp.v1"
    await communicator.disconnect()


async def test_it_accepts_a_token_in_the_query(owner):
    token = await make_token(owner)
    communicator = await connect(query=f"?token={token.secret}", protocols=[])
    assert communicator.connected is True
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


async def test_it_streams_chunks_then_stream_end_then_token_usage(owner):
    token = await make_token(owner)
    communicator = await connect(token)
    await communicator.send_json_to(inference("r1"))
    messages = await receive_until(communicator, "token_usage")
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "stream_chunk" and kinds[-2:] == ["stream_end", "token_usage"]
    assert all(m["id"] == "r1" for m in messages[:-1])
    end = messages[-2]
    assert end["usage"]["completion_tokens"] > 0
    figures = messages[-1]["usage"]
    assert figures["used"]["today"] == end["usage"]["total_tokens"]
    assert set(figures) == {"limits", "used", "reserved", "remaining", "resets_at"}
    assert figures == end["quota"]  # the settlement's own figures, no second read
    await communicator.disconnect()
    assert await sync_to_async(UsageRecord.objects.filter(user=owner).count)() == 1


async def test_it_sends_the_quota_figures_after_a_refused_request_too(owner):
    from usage.selectors import ausage_quota

    token = await make_token(owner)
    communicator = await connect(token)
    await communicator.send_json_to(inference("r1", model="no-such-model"))
    messages = await receive_until(communicator, "token_usage")
    assert [m["type"] for m in messages] == ["error", "token_usage"]
    assert messages[-1]["usage"] == await ausage_quota(user=owner)
    await communicator.disconnect()


async def test_it_runs_two_requests_at_once_on_one_socket(owner, settings):
    settings.INFERENCE_DEMO_TOKENS_PER_S = 200
    token = await make_token(owner)
    communicator = await connect(token)
    await communicator.send_json_to(inference("a", max_tokens=30))
    await communicator.send_json_to(inference("b", "Another tale", max_tokens=30))
    ends, chunks = set(), {"a": 0, "b": 0}
    order = []
    while len(ends) < 2:
        message = await communicator.receive_json_from(timeout=10)
        if message["type"] == "stream_chunk":
            chunks[message["id"]] += 1
            order.append(message["id"])
        elif message["type"] == "stream_end":
            ends.add(message["id"])
    assert chunks["a"] > 0 and chunks["b"] > 0
    # Interleaved: b's chunks arrived before a finished.
    assert order.index("b") < len(order) - 1 - order[::-1].index("a")
    await communicator.disconnect()


async def test_it_cancels_one_request(owner, settings):
    settings.INFERENCE_DEMO_TOKENS_PER_S = 100
    token = await make_token(owner)
    communicator = await connect(token)
    await communicator.send_json_to(inference("slow", max_tokens=500))
    await communicator.receive_json_from(timeout=5)
    await communicator.send_json_to({"type": "cancel", "id": "slow"})
    messages = await receive_until(communicator, "stream_end", "slow")
    assert messages[-1]["finish_reason"] == "cancelled"
    await asyncio.sleep(0.1)
    record = await sync_to_async(UsageRecord.objects.get)(user=owner)
    assert record.outcome == "cancelled"
    assert 0 < record.completion_tokens < 500
    await communicator.disconnect()


async def test_it_cancels_everything_when_the_socket_closes(owner, settings):
    settings.INFERENCE_DEMO_TOKENS_PER_S = 100
    token = await make_token(owner)
    communicator = await connect(token)
    await communicator.send_json_to(inference("x", max_tokens=500))
    await communicator.send_json_to(inference("y", max_tokens=500))
    streaming = set()
    while streaming != {"x", "y"}:  # both have reached the model
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] == "stream_chunk":
            streaming.add(message["id"])
    await communicator.disconnect()
    outcomes = await sync_to_async(list)(
        UsageRecord.objects.filter(user=owner).values_list("outcome", flat=True)
    )
    assert sorted(outcomes) == ["cancelled", "cancelled"]


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        '["a list"]',
        '{"type": "dance"}',
        '{"type": "inference", "request": {"messages": []}}',
        '{"type": "inference", "id": "q", "request": {"messages": "hi"}}',
        '{"type": "inference", "id": "q", "request": {"messages": [{"role": "x"}]}}',
        '{"type": "cancel", "id": "nothing-running"}',
    ],
)
async def test_it_answers_malformed_messages_without_closing(owner, frame):
    token = await make_token(owner)
    communicator = await connect(token)
    await communicator.send_to(text_data=frame)
    message = await communicator.receive_json_from()
    assert message["type"] == "error"
    assert message["error"]["code"] == "INVALID_REQUEST"
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


async def test_it_refuses_an_oversized_message(owner, settings):
    settings.WS_MAX_MESSAGE_BYTES = 2000
    token = await make_token(owner)
    communicator = await connect(token)
    await communicator.send_json_to(inference("big", "z" * 5000))
    message = await communicator.receive_json_from()
    assert message["error"]["code"] == "PAYLOAD_TOO_LARGE"
    await communicator.disconnect()


async def test_it_bounds_requests_in_flight(owner, settings):
    settings.WS_MAX_IN_FLIGHT = 1
    settings.INFERENCE_DEMO_TOKENS_PER_S = 50
    token = await make_token(owner)
    communicator = await connect(token)
    await communicator.send_json_to(inference("one", max_tokens=200))
    await communicator.send_json_to(inference("two"))
    messages = await receive_until(communicator, "error", "two")
    assert messages[-1]["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    await communicator.disconnect()


async def test_it_reports_quota_errors_by_id(owner):
    owner.daily_token_limit = 5
    await sync_to_async(owner.save)()
    token = await make_token(owner)
    communicator = await connect(token)
    await communicator.send_json_to(inference("q1"))
    messages = await receive_until(communicator, "error", "q1")
    assert messages[-1]["error"]["code"] == "QUOTA_EXCEEDED"
    await communicator.disconnect()


async def test_it_keeps_the_sync_threads_sqlite_connection_between_messages(db):
    """On SQLite, handling a message neither hops to asgiref's sync thread nor
    closes its long-lived connection there (a room's turns are saved from it).
    (Driven directly: the test communicator runs a consumer's sync code on a
    thread of its own, the servers on that shared thread.)"""
    import json

    from asgiref.sync import SyncToAsync
    from django.db import connections

    from inference.consumers import InferenceConsumer
    from inference.services import uses_sqlite

    if not uses_sqlite():
        pytest.skip("SQLite's shared connection; PostgreSQL's come from its pool")

    def shared_connection(open_it=False):
        if open_it:
            connections["default"].ensure_connection()
        return connections["default"].connection

    loop = asyncio.get_running_loop()
    executor = SyncToAsync.single_thread_executor
    first = await loop.run_in_executor(executor, shared_connection, True)
    consumer = InferenceConsumer()
    consumer.scope = {"type": "websocket", "path": "/ws/inference/"}
    sent = []

    async def base_send(message):
        sent.append(message)

    consumer.base_send = base_send
    await consumer.dispatch({"type": "websocket.receive", "text": json.dumps({"type": "ping"})})
    assert json.loads(sent[0]["text"]) == {"type": "pong"}
    assert first is not None and await loop.run_in_executor(executor, shared_connection) is first
