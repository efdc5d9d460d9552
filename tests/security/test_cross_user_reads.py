"""No cross-user reads anywhere: every URL pattern of the project, asked for the
owner's objects by someone else.

The test walks the project's URL resolver. Each pattern is either

- in CASES: it names (or shows) a user's objects; the probes point it at the
  owner's, and the friend (not invited to anything), the outsider (over the
  session and, on /api/, with a bearer token) and an anonymous visitor must be
  refused (403/404/401, or sent to log in) without any of the owner's data
  (MARK) in the answer, while the owner, as a control, gets through;
- in NO_USER_OBJECT: it names no user's object (the reason says why); it is
  still fetched as the friend, and must not show the owner's data;
- under admin/: every admin page is staff-only, so the friend, the outsider
  and the owner (none of them staff) are sent to the admin's login.

A pattern that is in none of them fails `test_it_knows_every_url_pattern`,
which lists it: whoever adds a URL decides here who may read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from config.asgi import application
from config.routing import websocket_urlpatterns
from games.views import _run_key
from tests.factories import ApiTokenFactory
from tests.security.conftest import MARK

# Committed data: API tokens are looked up on the gateway's own database thread.
# The admin pages are plain sync views, and a rolled-back test is much faster.
committed = pytest.mark.django_db(transaction=True)


def _walk(resolver: URLResolver, prefix: str = ""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


ROUTES = sorted(set(_walk(get_resolver())))


@dataclass(frozen=True)
class Probe:
    """One request at a pattern. `url` is formatted with the owner's objects
    (see `_values`); `stranger` are the statuses others may get, besides being
    sent to log in; `owner` is the control: what the owner gets."""

    method: str
    url: str
    body: dict | None = None
    stranger: tuple[int, ...] = (403, 404)
    owner: int | None = None
    owner_sees_mark: bool = False
    extra: dict = field(default_factory=dict)


GET, POST, DELETE = "GET", "POST", "DELETE"
OWN = (200,)  # a page of the caller's own things: allowed, but without the owner's
CONVERSATION = "/api/inference/conversations/{conversation}"

CASES: dict[str, list[Probe]] = {
    "": [Probe(GET, "/", stranger=OWN, owner=200)],
    # The invite code is the capability itself (128 random bits, sent by the
    # owner to one person): holding it shows the sign-up form, never the note,
    # and a signed-in holder cannot spend it.
    "invite/<str:code>/": [
        Probe(GET, "/invite/{invite_code}/", stranger=(200,), owner=200),
        Probe(POST, "/invite/{invite_code}/", {"username": "x"}, stranger=(200,), owner=200),
    ],
    "invites/": [Probe(GET, "/invites/", stranger=OWN, owner=200, owner_sees_mark=True)],
    "tokens/": [Probe(GET, "/tokens/", stranger=OWN, owner=200, owner_sees_mark=True)],
    "tokens/<int:token_id>/revoke/": [
        Probe(POST, "/tokens/{token_id}/revoke/", stranger=(404,), owner=302)
    ],
    "sessions/<int:session_id>/end/": [
        Probe(POST, "/sessions/{session_id}/end/", stranger=(404,), owner=302)
    ],
    "accounts/sessions/": [
        Probe(GET, "/accounts/sessions/", stranger=OWN, owner=200, owner_sees_mark=True)
    ],
    "usage/": [
        Probe(GET, "/usage/", stranger=OWN, owner=200, owner_sees_mark=True),
        Probe(GET, "/usage/", stranger=OWN, owner=200, extra={"HTTP_HX_REQUEST": "true"}),
    ],
    "usage/all/": [Probe(GET, "/usage/all/", stranger=(403,), owner=403)],
    "usage/all.csv": [Probe(GET, "/usage/all.csv", stranger=(403,), owner=403)],
    "games/": [Probe(GET, "/games/", stranger=OWN, owner=200, owner_sees_mark=True)],
    "games/publish/": [Probe(GET, "/games/publish/", stranger=(403,), owner=200)],
    "games/<slug:slug>/": [
        Probe(GET, "/games/{private_slug}/", stranger=(404,), owner=200, owner_sees_mark=True)
    ],
    "games/<slug:slug>/edit/": [
        Probe(GET, "/games/{private_slug}/edit/", stranger=(404,), owner=200, owner_sees_mark=True),
        Probe(POST, "/games/{private_slug}/edit/", {"title": "x"}, stranger=(404,), owner=200),
        # A game anyone may play is still only its owner's to change.
        Probe(GET, "/games/{open_slug}/edit/", stranger=(403,), owner=200),
        Probe(POST, "/games/{open_slug}/edit/", {"title": "x"}, stranger=(403,), owner=200),
    ],
    "games/<slug:slug>/session-token": [
        Probe(POST, "/games/{private_slug}/session-token", stranger=(404,), owner=200)
    ],
    "games/<slug:slug>/files/<path:path>": [
        Probe(GET, "/games/{private_slug}/files/index.html", stranger=(404,), owner=200)
    ],
    # A run key names its player: one made for the stranger (or a forged one)
    # opens nothing; the owner's own opens the owner's game.
    "games/<slug:slug>/run/<str:key>/<path:path>": [
        Probe(
            GET, "/games/{private_slug}/run/{own_run_key}/index.html", stranger=(404,), owner=200
        ),
        Probe(GET, "/games/{private_slug}/run/forged:key/index.html", stranger=(404,), owner=404),
    ],
    "api/inference/chat": [
        Probe(
            POST,
            "/api/inference/chat",
            {"conversation": "{conversation}", "messages": [{"role": "user", "content": "hi"}]},
            stranger=(404,),
            owner=200,
        )
    ],
    "api/inference/conversations": [
        Probe(POST, "/api/inference/conversations", {"game": "{private_slug}"}, (404,), 201)
    ],
    "api/inference/conversations/<conversation_id>": [
        Probe(GET, CONVERSATION, stranger=(404,), owner=200, owner_sees_mark=True),
        Probe(DELETE, CONVERSATION, stranger=(404,), owner=204),
    ],
    "api/inference/conversations/<conversation_id>/messages": [
        Probe(POST, CONVERSATION + "/messages", {"content": "hi"}, (404,), 200)
    ],
    "api/inference/conversations/<conversation_id>/players": [
        Probe(POST, CONVERSATION + "/players", {"username": "{username}"}, (404,), 200)
    ],
    "api/inference/usage": [
        Probe(GET, "/api/inference/usage", stranger=OWN, owner=200, owner_sees_mark=True)
    ],
    "api/inference/usage/stats": [
        Probe(GET, "/api/inference/usage/stats", stranger=OWN, owner=200, owner_sees_mark=True)
    ],
}

# Patterns that name no user's object: (why, a URL to fetch as the friend, or
# None when there is nothing to fetch with GET).
NO_USER_OBJECT: dict[str, tuple[str, str | None]] = {
    "healthz": ("the health check: global state only", "/healthz"),
    "api/": ("the API's root", "/api/"),
    "api/docs": ("the API documentation", "/api/docs"),
    "api/openapi.json": ("the OpenAPI document", "/api/openapi.json"),
    "api/inference/models": ("the model catalogue, the same for everyone", "/api/inference/models"),
    **{
        f"api/inference/{path}": (
            "a compatible endpoint: the caller's own chat or the catalogue",
            url,
        )
        for path, url in [
            ("anthropic/v1/messages", None),
            ("anthropic/messages", None),
            ("anthropic/v1/models", "/api/inference/anthropic/v1/models"),
            ("anthropic/v1/models/<path:model_id>", "/api/inference/anthropic/v1/models/demo"),
            ("openai/v1/chat/completions", None),
            ("openai/v1/models", "/api/inference/openai/v1/models"),
            ("openai/v1/models/<path:model_id>", "/api/inference/openai/v1/models/demo"),
            ("ollama", "/api/inference/ollama"),
            ("ollama/", "/api/inference/ollama/"),
            ("ollama/api/chat", None),
            ("ollama/chat", None),
            ("ollama/api/tags", "/api/inference/ollama/api/tags"),
            ("ollama/models", "/api/inference/ollama/models"),
            ("ollama/api/version", "/api/inference/ollama/api/version"),
        ]
    },
    # allauth: the caller's own account. Email verification and password reset
    # by mail are off (no email addresses are collected); their keys are
    # capabilities mailed to their owner.
    **{
        f"accounts/{path}": ("allauth: the caller's own account", url)
        for path, url in [
            ("login/", "/accounts/login/"),
            ("logout/", "/accounts/logout/"),
            ("inactive/", "/accounts/inactive/"),
            ("signup/", "/accounts/signup/"),
            ("reauthenticate/", "/accounts/reauthenticate/"),
            ("email/", "/accounts/email/"),
            ("confirm-email/", "/accounts/confirm-email/"),
            ("password/change/", "/accounts/password/change/"),
            ("password/set/", "/accounts/password/set/"),
            ("password/reset/", "/accounts/password/reset/"),
            ("login/code/confirm/", "/accounts/login/code/confirm/"),
            ("^confirm-email/(?P<key>[-:\\w]+)/$", "/accounts/confirm-email/forged-key/"),
            ("password/reset/key/done/", "/accounts/password/reset/key/done/"),
            (
                "^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$",
                "/accounts/password/reset/key/1-forged-key/",
            ),
            ("password/reset/done/", "/accounts/password/reset/done/"),
        ]
    },
}

# The WebSocket's patterns, handled by the tests at the end of this module.
WEBSOCKET_CASES = {"ws/inference/"}


def _values(world, user) -> dict[str, str]:
    return {
        "invite_code": world.invite.code,
        "token_id": str(world.token.pk),
        "session_id": str(world.session.pk),
        "conversation": str(world.conversation.pk),
        "private_slug": world.private_game.slug,
        "open_slug": world.open_game.slug,
        "own_run_key": _run_key(user=user, game=world.private_game) if user else "none",
        "username": user.username if user else "nobody",
    }


def _fill(value, values):
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def _request(client: Client, probe: Probe, values: dict, **headers):
    url = _fill(probe.url, values)
    body = _fill(probe.body, values)
    method = getattr(client, probe.method.lower())
    if url.startswith("/api/"):
        data = json.dumps(body) if body is not None else None
        return method(url, data=data, content_type="application/json", **probe.extra, **headers)
    return method(url, data=body or {}, **probe.extra, **headers)


def _sent_to_login(response) -> bool:
    location = response.headers.get("Location", "")
    return response.status_code == 302 and location.startswith(
        ("/accounts/login/", "/admin/login/")
    )


def _strangers(friend, outsider):
    """(who, client, extra headers): the friend and the outsider over the
    session, the outsider's bearer token, and nobody at all."""
    friend_client, outsider_client = Client(), Client()
    friend_client.force_login(friend)
    outsider_client.force_login(outsider)
    token = ApiTokenFactory(owner=outsider, name="outsider's token")
    return [
        ("friend", friend, friend_client, {}),
        ("outsider", outsider, outsider_client, {}),
        ("outsider's token", outsider, Client(), {"HTTP_AUTHORIZATION": f"Bearer {token.secret}"}),
        ("anonymous", None, Client(), {}),
    ]


def test_it_knows_every_url_pattern():
    unknown = [
        route
        for route in ROUTES
        if route not in CASES and route not in NO_USER_OBJECT and not route.startswith("admin/")
    ]
    assert not unknown, (
        "URL patterns this test does not know how to probe; add them to CASES "
        "(they show or name a user's objects) or NO_USER_OBJECT (with the reason):\n"
        + "\n".join(unknown)
    )
    stale = sorted((set(CASES) | set(NO_USER_OBJECT)) - set(ROUTES))
    assert not stale, f"patterns that no longer exist: {stale}"
    websocket = {str(pattern.pattern) for pattern in websocket_urlpatterns}
    assert websocket == WEBSOCKET_CASES, f"WebSocket patterns changed: {websocket}"


@committed
@pytest.mark.parametrize("route", sorted(CASES))
def test_it_keeps_the_owners_objects_from_everyone_else(route, world, owner, friend, outsider):
    for probe in CASES[route]:
        for who, user, client, headers in _strangers(friend, outsider):
            if who == "outsider's token" and not probe.url.startswith("/api/"):
                continue  # tokens authenticate nothing but the API (test_token_scope)
            response = _request(client, probe, _values(world, user), **headers)
            text = _body(response)
            assert MARK not in text, f"{who}: {probe.method} {probe.url} shows the owner's data"
            allowed = (401, *probe.stranger) if user is None else probe.stranger
            if user is None and route.startswith("invite/"):
                allowed = (200,)
            assert response.status_code in allowed or _sent_to_login(response), (
                f"{who}: {probe.method} {probe.url} -> {response.status_code} {text[:300]}"
            )
    # The control: the same URLs do reach the owner's objects.
    owner_client = Client()
    owner_client.force_login(owner)
    for probe in CASES[route]:
        response = _request(owner_client, probe, _values(world, owner))
        text = _body(response)
        assert response.status_code == probe.owner, f"owner: {probe.url} -> {text[:300]}"
        if probe.owner_sees_mark:
            assert MARK in text, f"owner: {probe.url} does not show the owner's data"
    if route.startswith("invite/"):
        world.invite.refresh_from_db()
        assert world.invite.uses == 0


@committed
def test_it_shows_no_owner_data_where_no_object_is_named(world, friend, outsider):
    # One loop rather than one test per pattern: the world is built once.
    problems = []
    for route, (_, url) in sorted(NO_USER_OBJECT.items()):
        if url is None:
            continue
        for who, _user, client, headers in _strangers(friend, outsider):
            response = client.get(url, **headers)
            if response.status_code >= 500 or MARK in _body(response):
                problems.append(f"{route}: {who}: GET {url} -> {response.status_code}")
    assert not problems, "\n".join(problems)


def _admin_url(route: str, world, owner) -> str:
    objects = {
        "accounts/user": owner.pk,
        "accounts/invite": world.invite.pk,
        "accounts/apitoken": world.token.pk,
        "games/game": world.private_game.pk,
        "games/conversation": world.conversation.pk,
        "usersessions/usersession": world.session.pk,
    }
    url = "/" + route
    if route.startswith("admin/r/"):  # "view on site" of the owner's game
        game_type = ContentType.objects.get_for_model(world.private_game)
        url = url.replace("<path:content_type_id>", str(game_type.pk))
        return url.replace("<path:object_id>", str(world.private_game.pk))
    object_id = objects.get("/".join(route.split("/")[1:3]), 1)
    url = url.replace("<path:object_id>", str(object_id)).replace("<id>", str(owner.pk))
    if "(?P<app_label>" in url:
        url = "/admin/games/"
    if "(?P<url>" in url:
        url = f"/admin/games/game/{world.private_game.pk}/change/more/"
    return url


ADMIN_ROUTES = [route for route in ROUTES if route.startswith("admin/")]


@pytest.mark.django_db
def test_it_sends_everyone_but_staff_to_the_admin_login(world, owner, friend, outsider, staff):
    # Every admin pattern (ADMIN_ROUTES), in one loop: the world is built once.
    problems = []
    for route in ADMIN_ROUTES:
        url = _admin_url(route, world, owner)
        for user in (friend, outsider):
            client = Client()
            client.force_login(user)
            for method in ("get", "post"):
                response = getattr(client, method)(url)
                if route == "admin/login/":
                    ok = response.status_code in (200, 302)
                elif route == "admin/logout/":  # to the admin's index, which sends to log in
                    ok = response.status_code == 302 and response["Location"] == "/admin/"
                else:
                    ok = _sent_to_login(response)
                if not ok or MARK in _body(response):
                    problems.append(f"{user}: {method.upper()} {url} -> {response.status_code}")
    assert not problems, "\n".join(problems)
    # The control: staff do get in, so the URLs above were real pages.
    client = Client()
    client.force_login(staff)
    assert (
        client.get(
            _admin_url("admin/games/game/<path:object_id>/change/", world, owner)
        ).status_code
        == 200
    )


# --- the WebSocket -------------------------------------------------------------------------


async def _socket(user) -> WebsocketCommunicator:
    from asgiref.sync import sync_to_async

    token = await sync_to_async(ApiTokenFactory)(owner=user)
    communicator = WebsocketCommunicator(
        application, "/ws/inference/", subprotocols=["vgp.v1", f"bearer.{token.secret}"]
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _answer(communicator, message: dict) -> dict:
    await communicator.send_json_to(message)
    while True:
        answer = await communicator.receive_json_from(timeout=5)
        if answer["type"] != "token_usage":
            return answer


@pytest.fixture
def ws_world(world, owner, friend, outsider):
    return SimpleNamespace(world=world, owner=owner, strangers=[friend, outsider])


@committed
async def test_it_lets_no_stranger_into_the_owners_room(ws_world):
    conversation = str(ws_world.world.conversation.pk)
    for user in ws_world.strangers:
        communicator = await _socket(user)
        joined = await _answer(communicator, {"type": "join", "conversation": conversation})
        assert joined["type"] == "error" and joined["error"]["code"] == "NOT_FOUND"
        request = {"messages": [{"role": "user", "content": "hi"}], "conversation": conversation}
        turn = await _answer(communicator, {"type": "inference", "id": "r1", "request": request})
        assert turn["type"] == "error" and turn["error"]["code"] == "NOT_FOUND"
        assert MARK not in json.dumps([joined, turn])
        await communicator.disconnect()
    communicator = await _socket(ws_world.owner)
    joined = await _answer(communicator, {"type": "join", "conversation": conversation})
    assert joined["type"] == "joined"
    await communicator.disconnect()
