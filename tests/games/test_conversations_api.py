"""/api/inference/conversations: server-side histories on the native API."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from games import services
from games.models import Conversation, ConversationMessage
from tests.fakes.server import Fault
from tests.inference.helpers import bearer, make_token, post_chat, read_sse, user_says
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/inference/conversations"


async def post(async_client, token, url: str, body: dict):
    return await async_client.post(
        url, data=json.dumps(body), content_type="application/json", headers=bearer(token)
    )


async def create(async_client, token, **body) -> dict:
    response = await post(async_client, token, URL, body)
    assert response.status_code == 201, response.content
    return response.json()


async def say(async_client, token, conversation_id, content: str, **extra):
    return await post(
        async_client, token, f"{URL}/{conversation_id}/messages", {"content": content, **extra}
    )


@sync_to_async
def stored(conversation_id) -> list[tuple[str, str]]:
    return list(
        ConversationMessage.objects.filter(conversation_id=conversation_id)
        .order_by("id")
        .values_list("role", "content")
    )


@sync_to_async
def invite(conversation_id, user) -> None:
    services.conversation_invite(
        conversation=Conversation.objects.get(pk=conversation_id), user=user
    )


# --- create --------------------------------------------------------------------------------


async def test_it_creates_a_conversation(async_client, owner, open_game):
    token = await make_token(owner)
    data = await create(
        async_client, token, game="open-game", system="Be a DM", model="demo", history_limit=6
    )
    assert data["game"] == "open-game" and data["model"] == "demo"
    assert data["history_limit"] == 6 and data["tokens_used"] == 0 and data["created_at"]
    conversation = await Conversation.objects.aget(pk=data["id"])
    assert conversation.owner_id == owner.pk and conversation.system_prompt == "Be a DM"


async def test_it_requires_credentials(async_client, db):
    response = await async_client.post(URL, data={}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


async def test_it_refuses_a_game_the_player_cannot_see(async_client, outsider, friends_game):
    token = await make_token(outsider)
    response = await post(async_client, token, URL, {"game": "secret-game"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_it_gives_a_game_token_its_own_game(async_client, owner, open_game, friends_game):
    token = await make_token(owner, game=open_game)
    data = await create(async_client, token)
    assert data["game"] == "open-game"
    response = await post(async_client, token, URL, {"game": "secret-game"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"


async def test_it_rejects_a_bad_history_limit(async_client, owner):
    token = await make_token(owner)
    response = await post(async_client, token, URL, {"history_limit": -1})
    assert response.status_code == 400
    assert "history_limit" in response.json()["error"]["message"]


# --- turns ---------------------------------------------------------------------------------


async def test_it_answers_a_turn_and_stores_it(async_client, owner):
    token = await make_token(owner)
    convo = await create(async_client, token, model="demo-storyteller")
    response = await say(async_client, token, convo["id"], "I open the door.")
    assert response.status_code == 200
    data = response.json()
    assert data["content"] and data["message"]["content"] == data["content"]
    assert await stored(convo["id"]) == [
        ("user", "I open the door."),
        ("assistant", data["content"]),
    ]
    conversation = await Conversation.objects.aget(pk=convo["id"])
    assert conversation.tokens_used == data["usage"]["total_tokens"] > 0
    record = await UsageRecord.objects.aget(user=owner)
    assert record.total_tokens == data["usage"]["total_tokens"]


async def test_it_streams_a_turn_and_stores_it(async_client, owner):
    token = await make_token(owner)
    convo = await create(async_client, token, model="demo-storyteller")
    response = await say(async_client, token, convo["id"], "I light a torch.", stream=True)
    assert response["Content-Type"] == "text/event-stream"
    events = await read_sse(response)
    chunks = [e["content"] for e in events if e["type"] == "stream_chunk"]
    assert len(chunks) > 3 and events[-1]["type"] == "stream_end"
    assert await stored(convo["id"]) == [
        ("user", "I light a torch."),
        ("assistant", "".join(chunks)),
    ]


async def test_it_sends_the_system_prompt_and_the_history_window(async_client, owner, upstreams):
    token = await make_token(owner)
    convo = await create(async_client, token, model="gpt-test", system="Be a DM", history_limit=2)
    for action in ("one", "two", "three"):
        response = await say(async_client, token, convo["id"], action)
        assert response.status_code == 200, response.content
    history = await stored(convo["id"])
    first, second, third = upstreams.openai.chat_bodies()
    assert [m["content"] for m in first["messages"]] == ["Be a DM", "one"]
    assert [m["content"] for m in third["messages"]] == [
        "Be a DM",
        "two",
        history[3][1],
        "three",
    ]
    assert [m["role"] for m in third["messages"]] == ["system", "user", "assistant", "user"]
    assert len(second["messages"]) == 4


async def test_it_starts_an_odd_window_at_a_players_turn(async_client, owner, upstreams):
    token = await make_token(owner)
    convo = await create(async_client, token, model="gpt-test", history_limit=3)
    for action in ("one", "two", "three"):
        await say(async_client, token, convo["id"], action)
    third = upstreams.openai.chat_bodies()[-1]
    # The last three messages are reply-one, two, reply-two: the window opens at "two".
    assert [m["role"] for m in third["messages"]] == ["user", "assistant", "user"]
    assert third["messages"][0]["content"] == "two"


async def test_it_stores_nothing_when_the_answer_fails(async_client, owner, upstreams):
    token = await make_token(owner)
    convo = await create(async_client, token, model="gpt-test")
    upstreams.openai.script(Fault.mid_stream_error(after_chunks=2))
    response = await say(async_client, token, convo["id"], "I jump.", stream=True)
    events = await read_sse(response)
    assert events[-1]["type"] == "error"
    upstreams.openai.script(Fault.with_status(400, {"error": {"message": "bad"}}))
    response = await say(async_client, token, convo["id"], "I jump again.")
    assert response.status_code >= 400
    assert await stored(convo["id"]) == []
    response = await say(async_client, token, convo["id"], "I try once more.")
    assert response.status_code == 200
    assert [role for role, _ in await stored(convo["id"])] == ["user", "assistant"]


async def test_it_lowers_max_tokens_to_the_token_cap(async_client, owner):
    token = await make_token(owner)
    convo = await create(async_client, token, model="demo", token_cap=40)
    data = (
        await say(async_client, token, convo["id"], "Tell me a long story", max_tokens=500)
    ).json()
    assert data["max_tokens"] == 40 and data["max_tokens_lowered"] is True


async def test_it_refuses_a_turn_once_the_token_cap_is_used_up(async_client, owner):
    token = await make_token(owner)
    convo = await create(async_client, token, model="demo", token_cap=50)
    await Conversation.objects.filter(pk=convo["id"]).aupdate(tokens_used=50)
    response = await say(async_client, token, convo["id"], "More!")
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "QUOTA_EXCEEDED" and error["limit"] == "conversation"
    assert await stored(convo["id"]) == []
    assert not await UsageRecord.objects.filter(user=owner).aexists()


async def test_it_continues_a_conversation_through_chat(async_client, owner, upstreams):
    token = await make_token(owner)
    convo = await create(async_client, token, model="gpt-test", system="Be a DM")
    await say(async_client, token, convo["id"], "one")
    response = await post_chat(
        async_client, token, {"messages": user_says("two"), "conversation": convo["id"]}
    )
    assert response.status_code == 200, response.content
    body = upstreams.openai.chat_bodies()[-1]
    assert [m["content"] for m in body["messages"]][:2] == ["Be a DM", "one"]
    assert [c for _, c in await stored(convo["id"])][2:] == ["two", response.json()["content"]]


async def test_it_wants_one_user_message_with_a_conversation(async_client, owner):
    token = await make_token(owner)
    convo = await create(async_client, token)
    messages = [*user_says("a"), {"role": "assistant", "content": "b"}, *user_says("c")]
    response = await post_chat(
        async_client, token, {"messages": messages, "conversation": convo["id"]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


async def test_it_rejects_get_on_messages(async_client, owner):
    token = await make_token(owner)
    convo = await create(async_client, token)
    response = await async_client.get(f"{URL}/{convo['id']}/messages", headers=bearer(token))
    assert response.status_code == 405


# --- reading, deleting, inviting -----------------------------------------------------------


async def test_it_returns_the_history_with_authors(async_client, owner, friend):
    token, friend_token = await make_token(owner), await make_token(friend)
    convo = await create(async_client, token, model="demo")
    await invite(convo["id"], friend)
    await say(async_client, token, convo["id"], "I go left.")
    await say(async_client, friend_token, convo["id"], "I go right.")
    data = (await async_client.get(f"{URL}/{convo['id']}", headers=bearer(friend_token))).json()
    assert data["id"] == convo["id"] and data["owner"] == "owner" and data["players"] == ["friend"]
    assert [(m["role"], m["author"]) for m in data["messages"]] == [
        ("user", "owner"),
        ("assistant", None),
        ("user", "friend"),
        ("assistant", None),
    ]
    assert all(m["created_at"] for m in data["messages"])


@pytest.mark.parametrize("who,status", [("owner", 200), ("friend", 200), ("outsider", 404)])
async def test_it_shows_a_conversation_to_its_owner_and_players_only(
    async_client, owner, friend, outsider, who, status
):
    convo = await create(async_client, await make_token(owner))
    await invite(convo["id"], friend)
    token = await make_token({"owner": owner, "friend": friend, "outsider": outsider}[who])
    response = await async_client.get(f"{URL}/{convo['id']}", headers=bearer(token))
    assert response.status_code == status
    response = await say(async_client, token, convo["id"], "Hello?")
    assert response.status_code == status
    if status == 404:
        assert response.json()["error"]["code"] == "NOT_FOUND"
        assert await stored(convo["id"]) == []


async def test_it_hides_a_conversation_from_another_games_token(
    async_client, owner, open_game, friends_game
):
    convo = await create(async_client, await make_token(owner), game="open-game")
    token = await make_token(owner, game=friends_game)
    response = await async_client.get(f"{URL}/{convo['id']}", headers=bearer(token))
    assert response.status_code == 403


async def test_it_treats_an_unknown_id_as_missing(async_client, owner):
    token = await make_token(owner)
    response = await async_client.get(
        f"{URL}/00000000-0000-0000-0000-000000000000", headers=bearer(token)
    )
    assert response.status_code == 404


@pytest.mark.parametrize("who,status", [("owner", 204), ("friend", 403), ("outsider", 404)])
async def test_it_lets_only_the_owner_delete(async_client, owner, friend, outsider, who, status):
    convo = await create(async_client, await make_token(owner))
    await invite(convo["id"], friend)
    token = await make_token({"owner": owner, "friend": friend, "outsider": outsider}[who])
    response = await async_client.delete(f"{URL}/{convo['id']}", headers=bearer(token))
    assert response.status_code == status
    assert await Conversation.objects.filter(pk=convo["id"]).aexists() is (status != 204)


@pytest.mark.parametrize("who,status", [("owner", 200), ("friend", 403), ("outsider", 404)])
async def test_it_lets_only_the_owner_invite(
    async_client, owner, friend, outsider, staff, who, status
):
    convo = await create(async_client, await make_token(owner))
    await invite(convo["id"], friend)
    token = await make_token({"owner": owner, "friend": friend, "outsider": outsider}[who])
    response = await post(
        async_client, token, f"{URL}/{convo['id']}/players", {"username": "staff"}
    )
    assert response.status_code == status
    if status == 200:
        assert response.json() == {"players": ["friend", "staff"]}


async def test_it_invites_only_players_who_can_see_the_game(
    async_client, owner, friend, outsider, friends_game
):
    token = await make_token(owner)
    convo = await create(async_client, token, game="secret-game")
    url = f"{URL}/{convo['id']}/players"
    response = await post(async_client, token, url, {"username": "outsider"})
    assert response.status_code == 404
    response = await post(async_client, token, url, {"username": "nobody"})
    assert response.status_code == 404
    response = await post(async_client, token, url, {"username": "friend"})
    assert response.json() == {"players": ["friend"]}
    friend_token = await make_token(friend)
    assert (
        await async_client.get(f"{URL}/{convo['id']}", headers=bearer(friend_token))
    ).status_code == 200


async def test_it_is_in_the_openapi_document(async_client, db):
    paths = (await async_client.get("/api/openapi.json")).json()["paths"]
    assert "/api/inference/conversations" in paths
    assert "/api/inference/conversations/{conversation_id}/messages" in paths
    assert "/api/inference/conversations/{conversation_id}/players" in paths
