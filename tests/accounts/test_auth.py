from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.test import AsyncRequestFactory, Client
from django.utils import timezone

from accounts.auth import authenticate_request, authenticate_scope, websocket_subprotocol
from accounts.models import ApiToken
from inference.errors import Forbidden, Unauthorized
from tests.factories import ApiTokenFactory

db_async = pytest.mark.django_db(transaction=True)
CSRF_SECRET = "a" * 32


@pytest.fixture
def rf():
    return AsyncRequestFactory()


def _with_session(request, user):
    """`request` carrying the session cookie of a signed-in `user`."""
    client = Client()
    client.force_login(user)
    request.COOKIES[settings.SESSION_COOKIE_NAME] = client.cookies[
        settings.SESSION_COOKIE_NAME
    ].value
    SessionMiddleware(lambda r: None).process_request(request)
    AuthenticationMiddleware(lambda r: None).process_request(request)
    return request


def _scope(*, subprotocols=(), query=b"", user=None, origin=None) -> dict:
    headers = [(b"origin", origin.encode())] if origin else []
    scope = {
        "type": "websocket",
        "path": "/ws/inference/",
        "subprotocols": list(subprotocols),
        "query_string": query,
        "headers": headers,
    }
    if user is not None:
        scope["user"] = user
    return scope


# --- HTTP -----------------------------------------------------------------------


@db_async
async def test_it_accepts_a_bearer_token(rf, owner_token, owner):
    request = rf.get(
        "/api/inference/models", headers={"Authorization": f"Bearer {owner_token.secret}"}
    )

    principal = await authenticate_request(request)

    assert principal.user.pk == owner.pk
    assert principal.token.pk == owner_token.pk
    assert principal.via == "token"


@db_async
async def test_it_accepts_an_x_api_key(rf, owner_token, owner):
    request = rf.post("/api/inference/chat", headers={"X-Api-Key": owner_token.secret})

    principal = await authenticate_request(request)

    assert principal.user.pk == owner.pk


@db_async
async def test_it_needs_no_csrf_token_with_a_bearer_token(rf, owner_token):
    request = rf.post(
        "/api/inference/chat", headers={"Authorization": f"Bearer {owner_token.secret}"}
    )

    principal = await authenticate_request(request)

    assert principal.token is not None


@db_async
async def test_it_reports_the_game_of_a_scoped_token(rf, owner):
    from games.models import Game

    game = await Game.objects.acreate(slug="space-quiz", title="Space Quiz")
    token = await sync_to_async(ApiTokenFactory)(owner=owner, game=game)
    request = rf.get("/api/x", headers={"Authorization": f"Bearer {token.secret}"})

    principal = await authenticate_request(request)

    assert principal.game_id == game.pk


@db_async
async def test_it_refuses_a_wrong_token(rf, owner_token):
    request = rf.get("/api/x", headers={"Authorization": f"Bearer {owner_token.secret}x"})

    with pytest.raises(Unauthorized, match="Invalid"):
        await authenticate_request(request)


@db_async
async def test_it_refuses_a_revoked_token(rf, owner_token):
    await ApiToken.objects.filter(pk=owner_token.pk).aupdate(revoked_at=timezone.now())
    request = rf.get("/api/x", headers={"Authorization": f"Bearer {owner_token.secret}"})

    with pytest.raises(Unauthorized, match="revoked"):
        await authenticate_request(request)


@db_async
async def test_it_refuses_an_expired_token(rf, owner_token):
    past = timezone.now() - timedelta(seconds=1)
    await ApiToken.objects.filter(pk=owner_token.pk).aupdate(expires_at=past)
    request = rf.get("/api/x", headers={"Authorization": f"Bearer {owner_token.secret}"})

    with pytest.raises(Unauthorized, match="expired"):
        await authenticate_request(request)


@db_async
async def test_it_forbids_the_token_of_an_inactive_user(rf, owner, owner_token):
    owner.is_active = False
    await owner.asave(update_fields=["is_active"])
    request = rf.get("/api/x", headers={"Authorization": f"Bearer {owner_token.secret}"})

    with pytest.raises(Forbidden, match="deactivated"):
        await authenticate_request(request)


@db_async
async def test_it_refuses_a_request_without_credentials(rf):
    request = rf.get("/api/x")
    SessionMiddleware(lambda r: None).process_request(request)
    AuthenticationMiddleware(lambda r: None).process_request(request)

    with pytest.raises(Unauthorized, match="Authentication required"):
        await authenticate_request(request)


@db_async
async def test_it_records_last_used_at(rf, owner_token):
    assert owner_token.last_used_at is None
    request = rf.get("/api/x", headers={"Authorization": f"Bearer {owner_token.secret}"})

    await authenticate_request(request)

    token = await ApiToken.objects.aget(pk=owner_token.pk)
    assert token.last_used_at is not None
    assert timezone.now() - token.last_used_at < timedelta(seconds=30)


@db_async
async def test_it_accepts_the_session_cookie(rf, owner):
    request = await sync_to_async(_with_session)(rf.get("/api/x"), owner)

    principal = await authenticate_request(request)

    assert principal.user.pk == owner.pk
    assert principal.via == "session"
    assert principal.game_id is None


@db_async
async def test_it_needs_the_csrf_token_for_a_session_post(rf, owner):
    request = await sync_to_async(_with_session)(rf.post("/api/x"), owner)

    with pytest.raises(Forbidden, match="CSRF"):
        await authenticate_request(request)


@db_async
async def test_it_accepts_a_session_post_with_the_csrf_token(rf, owner):
    request = rf.post("/api/x", headers={"X-CSRFToken": CSRF_SECRET})
    request.COOKIES[settings.CSRF_COOKIE_NAME] = CSRF_SECRET
    request = await sync_to_async(_with_session)(request, owner)

    principal = await authenticate_request(request)

    assert principal.user.pk == owner.pk


@db_async
async def test_it_treats_an_inactive_users_session_as_signed_out(rf, owner):
    request = await sync_to_async(_with_session)(rf.get("/api/x"), owner)
    owner.is_active = False
    await owner.asave(update_fields=["is_active"])

    with pytest.raises(Unauthorized):
        await authenticate_request(request)


# --- WebSocket ------------------------------------------------------------------


@db_async
async def test_it_accepts_a_bearer_subprotocol(owner_token, owner):
    scope = _scope(subprotocols=[f"bearer.{owner_token.secret}"])

    principal = await authenticate_scope(scope)

    assert principal.user.pk == owner.pk
    assert principal.token.pk == owner_token.pk


@db_async
async def test_it_accepts_a_token_query_parameter(owner_token, owner):
    scope = _scope(query=f"token={owner_token.secret}".encode())

    principal = await authenticate_scope(scope)

    assert principal.user.pk == owner.pk


@db_async
async def test_it_refuses_a_revoked_token_on_the_websocket(owner_token):
    await ApiToken.objects.filter(pk=owner_token.pk).aupdate(revoked_at=timezone.now())

    with pytest.raises(Unauthorized):
        await authenticate_scope(_scope(subprotocols=[f"bearer.{owner_token.secret}"]))


@db_async
async def test_it_forbids_an_inactive_users_token_on_the_websocket(owner, owner_token):
    owner.is_active = False
    await owner.asave(update_fields=["is_active"])

    with pytest.raises(Forbidden):
        await authenticate_scope(_scope(query=f"token={owner_token.secret}".encode()))


@db_async
async def test_it_accepts_the_session_user_from_our_own_pages(owner):
    principal = await authenticate_scope(_scope(user=owner, origin="http://localhost:8001"))

    assert principal.user.pk == owner.pk
    assert principal.via == "session"


@db_async
async def test_it_refuses_the_session_user_from_another_site(owner):
    with pytest.raises(Unauthorized, match="this site"):
        await authenticate_scope(_scope(user=owner, origin="https://evil.example"))


@db_async
async def test_it_refuses_a_handshake_without_credentials():
    from django.contrib.auth.models import AnonymousUser

    with pytest.raises(Unauthorized):
        await authenticate_scope(_scope(user=AnonymousUser()))


def test_it_selects_vgp_v1_when_offered_with_a_bearer_token():
    scope = _scope(subprotocols=["vgp.v1", "bearer.vgp_secret"])

    assert websocket_subprotocol(scope) == "vgp.v1"


def test_it_echoes_a_lone_bearer_subprotocol():
    scope = _scope(subprotocols=["bearer.vgp_secret"])

    assert websocket_subprotocol(scope) == "bearer.vgp_secret"


def test_it_selects_vgp_v1_without_a_token():
    assert websocket_subprotocol(_scope(subprotocols=["vgp.v1"])) == "vgp.v1"


def test_it_selects_no_subprotocol_when_none_is_offered():
    assert websocket_subprotocol(_scope()) is None
