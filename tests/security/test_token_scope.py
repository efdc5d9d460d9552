"""Token scope. A game-scoped token (the play page's short-lived one, or a
personal token tied to a game) works only for its game: its chats are
attributed to that game, another game's conversations and models outside the
game's `allowed_models` are refused. Tokens of any kind authenticate only the
API: the HTML pages (tokens, usage, invites, games, admin) take the session
alone, and a token is not a session either."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts.services import api_token_create
from config.asgi import application
from games import services as game_services
from tests.factories import ApiTokenFactory
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "hi"}]


def _post(url, body, secret, **extra):
    return Client().post(
        url,
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
        **extra,
    )


def _code(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


@pytest.fixture
def scoped(world, owner):
    """Tokens limited to the owner's private game, which allows only `demo`.
    (The world's conversation belongs to the other game, the open one.)"""
    game = world.private_game
    game.allowed_models = ["demo"]
    game.save(update_fields=["allowed_models"])
    session_secret = game_services.game_session_token_create(user=owner, game=game)
    _, personal_secret = api_token_create(owner=owner, name="for one game", game=game)
    return [session_secret, personal_secret]


def test_it_attributes_a_scoped_tokens_chat_to_its_game(world, scoped, owner):
    for secret in scoped:
        response = _post("/api/inference/chat", {"messages": HI}, secret)
        assert response.status_code == 200, response.content
    records = UsageRecord.objects.filter(user=owner, token__isnull=False)
    assert records.count() == 2
    assert {record.game_id for record in records} == {world.private_game.pk}


def test_it_refuses_models_outside_the_games_list(scoped):
    for secret in scoped:
        response = _post(
            "/api/inference/chat", {"model": "demo-storyteller", "messages": HI}, secret
        )
        assert _code(response) == (403, "FORBIDDEN")
        compat = _post(
            "/api/inference/openai/v1/chat/completions",
            {"model": "demo-storyteller", "messages": HI},
            secret,
        )
        assert compat.status_code == 403


def test_it_refuses_another_games_conversations(world, scoped, owner):
    conversation = str(world.conversation.pk)  # the owner's own, in the open game
    url = f"/api/inference/conversations/{conversation}"
    for secret in scoped:
        bearer = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
        assert _code(Client().get(url, **bearer)) == (403, "FORBIDDEN")
        assert _code(_post(url + "/messages", {"content": "hi"}, secret)) == (403, "FORBIDDEN")
        chat = {"messages": HI, "conversation": conversation}
        assert _code(_post("/api/inference/chat", chat, secret)) == (403, "FORBIDDEN")
        other_game = {"game": world.open_game.slug}
        assert _code(_post("/api/inference/conversations", other_game, secret)) == (
            403,
            "FORBIDDEN",
        )
        # Its own game's conversations are fine.
        created = _post("/api/inference/conversations", {}, secret)
        assert created.status_code == 201 and created.json()["game"] == world.private_game.slug
    # The owner's personal, unscoped token reaches the conversation.
    personal = ApiTokenFactory(owner=owner)
    response = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {personal.secret}")
    assert response.status_code == 200


async def test_it_keeps_a_scoped_token_out_of_another_games_room_on_the_websocket(world, scoped):
    for secret in scoped:
        communicator = WebsocketCommunicator(
            application, "/ws/inference/", subprotocols=["vgp.v1", f"bearer.{secret}"]
        )
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_json_to(
            {"type": "join", "conversation": str(world.conversation.pk)}
        )
        answer = await communicator.receive_json_from(timeout=5)
        assert answer["type"] == "error" and answer["error"]["code"] == "FORBIDDEN"
        await communicator.disconnect()


HTML_PAGES = [
    ("get", "/"),
    ("get", "/tokens/"),
    ("post", "/tokens/"),
    ("get", "/usage/"),
    ("get", "/usage/all/"),
    ("get", "/usage/all.csv"),
    ("get", "/invites/"),
    ("get", "/games/"),
    ("get", "/games/publish/"),
    ("get", "/games/owner-open-game/"),
    ("post", "/games/owner-open-game/session-token"),
    ("get", "/accounts/sessions/"),
    ("get", "/admin/"),
    ("get", "/admin/accounts/apitoken/"),
]


def _signed_in(response) -> bool:
    return response.wsgi_request.user.is_authenticated


def test_it_authenticates_no_html_page_with_a_token(world, scoped, owner, friend, staff):
    # Staff's token too: the admin is the page most worth reaching.
    tokens = [*scoped, ApiTokenFactory(owner=staff).secret, ApiTokenFactory(owner=friend).secret]
    for secret in tokens:
        for header in ("HTTP_AUTHORIZATION", "HTTP_X_API_KEY"):
            value = f"Bearer {secret}" if header == "HTTP_AUTHORIZATION" else secret
            for method, url in HTML_PAGES:
                response = getattr(Client(), method)(url, **{header: value})
                assert not _signed_in(response), f"{url} took a token"
                if url != "/":
                    assert response.status_code == 302, f"{method} {url}: {response.status_code}"
                    assert response["Location"].startswith(("/accounts/login/", "/admin/login/"))


def test_it_does_not_take_a_token_as_a_session(owner, owner_token):
    for cookie in (owner_token.secret, owner_token.token_hash):
        browser = Client()
        browser.cookies[settings.SESSION_COOKIE_NAME] = cookie
        response = browser.get("/tokens/")
        assert response.status_code == 302 and not _signed_in(response)
        api = browser.get("/api/inference/usage")
        assert api.status_code == 401


def test_it_takes_no_token_from_the_query_string_over_http(owner_token):
    response = Client().get(f"/api/inference/usage?token={owner_token.secret}")
    assert response.status_code == 401
