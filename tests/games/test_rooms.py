"""Multiplayer rooms on /ws/inference/: players of one conversation share its turns."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from games import services
from games.models import Conversation, ConversationMessage
from tests.factories import ApiTokenFactory
from tests.inference.helpers import bearer, make_token, user_says

pytestmark = pytest.mark.django_db(transaction=True)


async def player(token) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, "/ws/inference/", subprotocols=["vgp.v1", f"bearer.{token.secret}"]
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive_until(communicator, test, timeout=10) -> list[dict]:
    messages = []
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        messages.append(message)
        if test(message):
            return messages


async def join(communicator, conversation_id) -> dict:
    await communicator.send_json_to({"type": "join", "conversation": str(conversation_id)})
    [*_, answer] = await receive_until(communicator, lambda m: m["type"] in ("joined", "error"))
    return answer


def act(request_id: str, conversation_id, text: str, **extra) -> dict:
    return {
        "type": "inference",
        "id": request_id,
        "request": {"messages": user_says(text), "conversation": str(conversation_id), **extra},
    }


def turn_ended(message: dict) -> bool:
    return message["type"] in ("stream_end", "error") and "turn" in message


@pytest.fixture
async def room(owner, friend):
    """A conversation of `owner` with `friend` invited, and both players' tokens."""

    @sync_to_async
    def make():
        conversation = services.conversation_create(owner=owner, model="demo-storyteller")
        services.conversation_invite(conversation=conversation, user=friend)
        return conversation

    conversation = await make()
    return conversation, await make_token(owner), await make_token(friend)


@sync_to_async
def stored(conversation) -> list[tuple[str, str, str | None]]:
    return [
        (m.role, m.content, m.author.username if m.author else None)
        for m in ConversationMessage.objects.filter(conversation=conversation)
        .select_related("author")
        .order_by("id")
    ]


async def test_it_streams_a_turn_to_everyone_in_the_room(room):
    conversation, owner_token, friend_token = room
    alice, bob = await player(owner_token), await player(friend_token)
    assert (await join(alice, conversation.pk))["conversation"] == str(conversation.pk)
    await join(bob, conversation.pk)
    joined = await alice.receive_json_from(timeout=5)
    assert joined == {
        "type": "player_joined",
        "conversation": str(conversation.pk),
        "author": "friend",
    }

    await alice.send_json_to(act("a1", conversation.pk, "Aria: I open the gate."))
    mine = await receive_until(alice, lambda m: m["type"] == "token_usage")
    theirs = await receive_until(bob, turn_ended)

    assert [m["type"] for m in mine[:2]] == ["room_action", "stream_chunk"]
    assert [m["type"] for m in mine[-2:]] == ["stream_end", "token_usage"]
    assert all(m["id"] == "a1" for m in mine[:-1])
    text = "".join(m["content"] for m in mine if m["type"] == "stream_chunk")

    assert theirs[0] == {
        "type": "room_action",
        "conversation": str(conversation.pk),
        "turn": mine[0]["turn"],
        "author": "owner",
        "content": "Aria: I open the gate.",
    }
    assert {m["type"] for m in theirs[1:-1]} == {"stream_chunk"}
    assert "".join(m["content"] for m in theirs[1:-1]) == text
    end = theirs[-1]
    assert end["type"] == "stream_end" and end["stored"] is True and end["author"] == "owner"
    assert all("id" not in m for m in theirs)
    assert await stored(conversation) == [
        ("user", "Aria: I open the gate.", "owner"),
        ("assistant", text, None),
    ]
    await alice.disconnect()
    await bob.disconnect()


async def test_it_answers_two_players_one_after_the_other(room, upstreams):
    conversation, owner_token, friend_token = room
    await Conversation.objects.filter(pk=conversation.pk).aupdate(model="gpt-test")
    upstreams.openai.token_delay = 0.01  # slow enough for the two turns to overlap
    alice, bob = await player(owner_token), await player(friend_token)
    watcher = await player(await make_token(conversation.owner))
    await join(watcher, conversation.pk)

    await asyncio.gather(
        alice.send_json_to(act("a", conversation.pk, "Aria: I attack.")),
        bob.send_json_to(act("b", conversation.pk, "Bram: I defend.")),
    )
    seen = []
    while sum(1 for m in seen if turn_ended(m)) < 2:
        seen.append(await watcher.receive_json_from(timeout=10))

    # The room sees one whole turn, then the other: never two at once.
    turns = [m["turn"] for m in seen if "turn" in m]
    first, second = turns[0], turns[-1]
    assert first != second
    assert turns == [first] * turns.count(first) + [second] * turns.count(second)
    assert [m["type"] for m in seen if m["type"] != "stream_chunk"] == [
        "room_action",
        "stream_end",
        "room_action",
        "stream_end",
    ]
    history = await stored(conversation)
    assert [role for role, _, _ in history] == ["user", "assistant", "user", "assistant"]
    # The second turn was written with the first one's answer in its history.
    first_body, second_body = upstreams.openai.chat_bodies()
    assert len(first_body["messages"]) == 1
    assert [m["content"] for m in second_body["messages"]] == [c for _, c, _ in history[:3]]
    for communicator in (alice, bob, watcher):
        await communicator.disconnect()


async def test_it_tells_the_room_about_turns_taken_over_http(room, async_client):
    conversation, owner_token, friend_token = room
    bob = await player(friend_token)
    await join(bob, conversation.pk)
    response = await async_client.post(
        f"/api/inference/conversations/{conversation.pk}/messages",
        data=json.dumps({"content": "I rest."}),
        content_type="application/json",
        headers=bearer(owner_token),
    )
    theirs = await receive_until(bob, turn_ended)
    assert theirs[0]["type"] == "room_action" and theirs[0]["author"] == "owner"
    assert "".join(m["content"] for m in theirs[1:-1]) == response.json()["content"]
    await bob.disconnect()


async def test_it_keeps_an_outsider_out(room, outsider):
    conversation, *_ = room
    mallory = await player(await make_token(outsider))
    answer = await join(mallory, conversation.pk)
    assert answer["type"] == "error" and answer["error"]["code"] == "NOT_FOUND"
    await mallory.send_json_to(act("m1", conversation.pk, "I steal the gold."))
    [*_, error] = await receive_until(mallory, lambda m: m["type"] == "error")
    assert error["id"] == "m1" and error["error"]["code"] == "NOT_FOUND"
    assert await stored(conversation) == []
    await mallory.disconnect()


async def test_it_keeps_another_games_token_out(room, open_game, owner):
    conversation, *_ = room
    token = await sync_to_async(ApiTokenFactory)(owner=owner, game=open_game)
    communicator = await player(token)
    answer = await join(communicator, conversation.pk)
    assert answer["error"]["code"] == "FORBIDDEN"
    await communicator.disconnect()


async def test_it_stops_telling_a_player_who_left(room):
    conversation, owner_token, friend_token = room
    alice, bob = await player(owner_token), await player(friend_token)
    await join(bob, conversation.pk)
    await bob.send_json_to({"type": "leave", "conversation": str(conversation.pk)})
    assert (await bob.receive_json_from(timeout=5))["type"] == "left"
    await alice.send_json_to(act("a1", conversation.pk, "I sing."))
    await receive_until(alice, lambda m: m["type"] == "token_usage")
    assert await bob.receive_nothing(timeout=0.3)
    await alice.disconnect()
    await bob.disconnect()


async def test_it_cancels_a_turn_and_stores_nothing(room, settings):
    settings.INFERENCE_DEMO_TOKENS_PER_S = 100
    conversation, owner_token, friend_token = room
    alice, bob = await player(owner_token), await player(friend_token)
    await join(bob, conversation.pk)
    await alice.send_json_to(act("a1", conversation.pk, "I ramble.", max_tokens=500))
    await receive_until(alice, lambda m: m["type"] == "stream_chunk")
    await alice.send_json_to({"type": "cancel", "id": "a1"})
    [*_, end, _] = await receive_until(alice, lambda m: m["type"] == "token_usage")
    assert end["type"] == "stream_end" and end["finish_reason"] == "cancelled"
    assert end["stored"] is False and end["turn"] and end["usage"]["completion_tokens"] > 0
    [*_, their_end] = await receive_until(bob, turn_ended)
    assert their_end["finish_reason"] == "cancelled" and their_end["stored"] is False
    assert await stored(conversation) == []
    # The room is free again.
    await alice.send_json_to(act("a2", conversation.pk, "I stop rambling.", max_tokens=5))
    [*_, end] = await receive_until(alice, lambda m: m["type"] == "stream_end")
    assert end["stored"] is True
    await alice.disconnect()
    await bob.disconnect()


# --- across server processes (PostgreSQL + Redis) -------------------------------------------


@pytest.fixture
def second_server(live, _anthropic_server, _openai_server, ollama_server):
    from tests.conftest import upstream_env
    from tests.live import LiveServer

    server = LiveServer(
        upstream_env(anthropic=_anthropic_server, openai=_openai_server, ollama=ollama_server)
    ).start()
    yield server
    server.stop()


async def _ws_receive_until(socket, test, timeout=15) -> list[dict]:
    messages = []
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        messages.append(message)
        if test(message):
            return messages


async def _ws_join(socket, conversation_id) -> None:
    await socket.send(json.dumps({"type": "join", "conversation": str(conversation_id)}))
    [*_, answer] = await _ws_receive_until(socket, lambda m: m["type"] in ("joined", "error"))
    assert answer["type"] == "joined", answer


async def _two_turns(socket) -> list[dict]:
    """Messages until two turns ended: the player's own and the other one's."""
    seen: list[dict] = []
    while sum(1 for m in seen if turn_ended(m)) < 2:
        seen.extend(await _ws_receive_until(socket, turn_ended))
    return seen


@pytest.mark.services
def test_it_shares_a_room_between_server_processes(live, second_server, openai_upstream):
    from websockets.asyncio.client import connect

    from tests.factories import UserFactory

    owner, friend = UserFactory(username="alice"), UserFactory(username="bram")
    conversation = services.conversation_create(owner=owner, model="gpt-test")
    services.conversation_invite(conversation=conversation, user=friend)
    tokens = [ApiTokenFactory(owner=owner).secret, ApiTokenFactory(owner=friend).secret]
    openai_upstream.token_delay = 0.01

    async def play() -> tuple[list[dict], list[dict]]:
        urls = [f"{live.ws_url}/ws/inference/", f"{second_server.ws_url}/ws/inference/"]
        async with (
            connect(urls[0], subprotocols=["vgp.v1", f"bearer.{tokens[0]}"]) as alice,
            connect(urls[1], subprotocols=["vgp.v1", f"bearer.{tokens[1]}"]) as bram,
        ):
            await _ws_join(alice, conversation.pk)
            await _ws_join(bram, conversation.pk)
            # One turn, watched from the other process.
            await alice.send(json.dumps(act("a1", conversation.pk, "Aria: I open the gate.")))
            mine = await _ws_receive_until(alice, lambda m: m["type"] == "token_usage")
            theirs = await _ws_receive_until(bram, turn_ended)
            text = "".join(m["content"] for m in mine if m["type"] == "stream_chunk")
            assert theirs[0]["type"] == "room_action" and theirs[0]["author"] == "alice"
            assert "".join(m["content"] for m in theirs[1:-1]) == text
            assert theirs[-1]["stored"] is True
            # Two players at once, on two processes: one turn after the other.
            await asyncio.gather(
                alice.send(json.dumps(act("a2", conversation.pk, "Aria: I attack."))),
                bram.send(json.dumps(act("b1", conversation.pk, "Bram: I defend."))),
            )
            return await _two_turns(alice), await _two_turns(bram)

    seen_by_alice, seen_by_bram = asyncio.run(play())
    history = [
        (m.role, m.author.username if m.author else None)
        for m in ConversationMessage.objects.filter(conversation=conversation)
        .select_related("author")
        .order_by("id")
    ]
    assert [role for role, _ in history] == ["user", "assistant"] * 3
    assert {history[2][1], history[4][1]} == {"alice", "bram"}
    # The later of the two turns was written with the earlier one's answer.
    bodies = openai_upstream.chat_bodies()
    assert [len(body["messages"]) for body in bodies] == [1, 3, 5]
    for seen in (seen_by_alice, seen_by_bram):
        turns = [m["turn"] for m in seen if "turn" in m]
        # Each player's own turn and the other's never interleave.
        changes = sum(1 for a, b in itertools.pairwise(turns) if a != b)
        assert changes <= 1, turns
