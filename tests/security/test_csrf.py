"""CSRF on cookie-authenticated writes: a signed-in browser's cookie alone
writes nothing. Every write on the API (native and compatible) and every HTML
form is refused without the CSRF token; a Bearer token needs none (a page on
another site cannot add that header, so there is nothing to forge)."""

from __future__ import annotations

import json

import pytest
from allauth.usersessions.models import UserSession
from django.test import Client

from accounts.models import ApiToken
from games.models import Conversation, Game
from tests.factories import ApiTokenFactory

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
CONVERSATION = "/api/inference/conversations/{conversation}"
API_WRITES = [
    ("post", "/api/inference/chat", CHAT),
    ("post", "/api/inference/anthropic/v1/messages", CHAT),
    ("post", "/api/inference/anthropic/messages", CHAT),
    ("post", "/api/inference/openai/v1/chat/completions", CHAT),
    ("post", "/api/inference/ollama/api/chat", CHAT),
    ("post", "/api/inference/ollama/chat", CHAT),
    ("post", "/api/inference/conversations", {}),
    ("post", CONVERSATION + "/messages", {"content": "hi", "max_tokens": 16}),
    ("post", CONVERSATION + "/players", {"username": "friend"}),
    ("delete", CONVERSATION, None),
]
FORMS = [
    ("/invites/", {"note": "x", "max_uses": 1}),
    ("/tokens/", {"name": "forged"}),
    ("/tokens/{token}/revoke/", {}),
    ("/sessions/{session}/end/", {}),
    ("/games/publish/", {"title": "x", "slug": "forged"}),
    ("/games/{slug}/edit/", {"title": "Forged"}),
    ("/games/{slug}/session-token", {}),
    ("/accounts/logout/", {}),
    ("/accounts/password/change/", {"oldpassword": "x", "password1": "y", "password2": "y"}),
]


def _urls(world) -> dict[str, str]:
    return {
        "conversation": str(world.conversation.pk),
        "token": str(world.token.pk),
        "session": str(world.session.pk),
        "slug": world.open_game.slug,
    }


def _api(client, method, url, body, **headers):
    data = json.dumps(body) if body is not None else None
    return getattr(client, method)(url, data=data, content_type="application/json", **headers)


def _state(world):
    """What a forged write could change."""
    return (
        ApiToken.objects.filter(kind=ApiToken.Kind.PERSONAL).count(),
        ApiToken.objects.filter(revoked_at__isnull=False).count(),
        UserSession.objects.filter(pk=world.session.pk).exists(),
        Conversation.objects.filter(pk=world.conversation.pk).exists(),
        Game.objects.get(pk=world.open_game.pk).title,
        world.conversation.players.count(),
        world.invite.__class__.objects.count(),
    )


def test_it_refuses_session_writes_without_the_csrf_token(world, owner, friend):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    before = _state(world)
    for method, url, body in API_WRITES:
        response = _api(browser, method, url.format(**_urls(world)), body)
        assert response.status_code == 403, f"{method} {url}: {response.status_code}"
        assert "CSRF" in response.content.decode(), url
    for url, data in FORMS:
        response = browser.post(url.format(**_urls(world)), data)
        assert response.status_code == 403, f"POST {url}: {response.status_code}"
    assert _state(world) == before
    assert "_auth_user_id" in browser.session  # the forged logout did nothing


def test_it_refuses_anonymous_forms_without_the_csrf_token(world, outsider):
    visitor = Client(enforce_csrf_checks=True)
    from tests.conftest import PASSWORD

    assert (
        visitor.post("/accounts/login/", {"login": "outsider", "password": PASSWORD}).status_code
        == 403
    )
    sign_up = {
        "username": "forged",
        "password1": "a long passphrase",
        "password2": "a long passphrase",
    }
    assert visitor.post(f"/invite/{world.invite.code}/", sign_up).status_code == 403
    world.invite.refresh_from_db()
    assert world.invite.uses == 0


def test_it_accepts_session_writes_with_the_csrf_token(world, owner):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    browser.get("/tokens/")  # sets the CSRF cookie, as any page does
    csrf = browser.cookies["csrftoken"].value
    response = _api(browser, "post", "/api/inference/chat", CHAT, HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 200, response.content
    response = browser.post("/tokens/", {"name": "real", "csrfmiddlewaretoken": csrf})
    assert response.status_code == 200
    assert ApiToken.objects.filter(name="real").exists()


def test_it_needs_no_csrf_token_with_a_bearer_token(world, owner, friend):
    token = ApiTokenFactory(owner=owner)
    api = Client(enforce_csrf_checks=True)
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token.secret}"}
    expected = {"delete": 204, "/api/inference/conversations": 201}
    for method, url, body in API_WRITES:
        response = _api(api, method, url.format(**_urls(world)), body, **bearer)
        want = expected.get(method) or expected.get(url) or 200
        assert response.status_code == want, f"{method} {url}: {response.content[:300]}"


# Under ASGI the CSRF middleware checks on the event loop (config/middleware.py);
# the same forgeries are refused there, and a multipart upload (checked in a
# thread, since reading its form writes files) passes with its token.


async def test_it_refuses_forgeries_under_asgi_too(world, owner):
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    browser = AsyncClient(enforce_csrf_checks=True)
    await browser.aforce_login(owner)
    urls = await sync_to_async(_urls)(world)
    before = await sync_to_async(_state)(world)
    for method, url, body in API_WRITES:
        data = json.dumps(body) if body is not None else None
        response = await getattr(browser, method)(
            url.format(**urls), data=data, content_type="application/json"
        )
        assert response.status_code == 403, f"{method} {url}: {response.status_code}"
    for url, data in FORMS:
        response = await browser.post(url.format(**urls), data)
        assert response.status_code == 403, f"POST {url}: {response.status_code}"
        upload = await browser.post(url.format(**urls), {**data, "package": b"x"})
        assert upload.status_code == 403, f"multipart POST {url}: {upload.status_code}"
    assert await sync_to_async(_state)(world) == before


async def test_it_accepts_a_multipart_form_with_its_token_under_asgi(world, owner):
    from asgiref.sync import sync_to_async
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import AsyncClient

    from tests.security.conftest import INDEX, make_zip

    browser = AsyncClient(enforce_csrf_checks=True)
    await browser.aforce_login(owner)
    await browser.get("/tokens/")
    csrf = browser.cookies["csrftoken"].value
    archive = make_zip({"index.html": INDEX, "game.js": b"1;"}).getvalue()
    package = SimpleUploadedFile("game.zip", archive, content_type="application/zip")
    form = {"title": "Uploaded", "slug": "uploaded", "visibility": "everyone", "package": package}
    response = await browser.post("/games/publish/", {**form, "csrfmiddlewaretoken": csrf})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert await sync_to_async(Game.objects.filter(slug="uploaded").exists)()
