"""Secrets never reach a browser or a log.

The upstream API keys are set to values no page could show by chance; every
page a user (or staff) can load, every error body of an upstream that refuses
the key, and every log record written meanwhile (captured at DEBUG, the SDKs'
and HTTP clients' loggers included) are searched for them. The platform's own
API token secret is shown once, on the page that creates it, and never logged.
"""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.conf import settings as django_settings
from django.test import Client

from accounts.models import ApiToken
from tests.factories import ApiTokenFactory
from tests.security.conftest import MARK

pytestmark = pytest.mark.django_db(transaction=True)

ANTHROPIC_KEY = "sk-ant-vgp-SECRET-anthropic-7f3a9c"
OPENAI_KEY = "sk-vgp-SECRET-openai-91c2d4"
MODELS = {"anthropic": "claude-sonnet-5-5", "openai": "gpt-test", "ollama": "qwen3:0.6b"}
LOGGERS = (
    *("", "django", "django.request", "django.server", "daphne", "asyncio"),
    *("httpx", "httpcore", "httpx2", "httpcore2", "aiohttp", "anthropic", "openai", "ollama"),
    *("inference", "accounts", "games", "usage", "allauth", "channels"),
)


@pytest.fixture
def keys(settings, upstreams):
    settings.ANTHROPIC_API_KEY = ANTHROPIC_KEY
    settings.OPENAI_API_KEY = OPENAI_KEY
    return (ANTHROPIC_KEY, OPENAI_KEY, django_settings.SECRET_KEY)


@pytest.fixture
def every_log(caplog):
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def logged(caplog) -> str:
    """Everything the records say: messages, arguments, tracebacks, extras."""
    formatter = logging.Formatter("%(message)s")
    return "\n".join(f"{formatter.format(r)} {r.__dict__!r}" for r in caplog.records)


def body(response) -> str:
    return response.content.decode(errors="replace")


async def abody(response) -> str:
    if not getattr(response, "streaming", False):
        return body(response)
    raw = b""
    async for part in response.streaming_content:
        raw += part
    return raw.decode(errors="replace")


def assert_clean(text: str, secrets, where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{where} contains a secret"


CHAT_PATHS = (
    "/api/inference/chat",
    "/api/inference/anthropic/v1/messages",
    "/api/inference/openai/v1/chat/completions",
    "/api/inference/ollama/api/chat",
)


async def drive_every_backend(client, headers) -> list[tuple[str, int, str]]:
    """Native and compatible chats through each backend, JSON and streamed:
    (path, status, body) of each."""
    answers = []
    for model in MODELS.values():
        for stream in (False, True):
            payload = {"model": model, "messages": [{"role": "user", "content": "Where am I"}]}
            payload |= {"stream": stream, "max_tokens": 32}
            for path in CHAT_PATHS:
                response = await client.post(
                    path, data=json.dumps(payload), content_type="application/json", headers=headers
                )
                answers.append((path, response.status_code, await abody(response)))
    for path in ("/api/inference/models", "/api/inference/openai/v1/models", "/healthz"):
        response = await client.get(path, headers=headers)
        answers.append((path, response.status_code, body(response)))
    return answers


async def test_it_keeps_upstream_keys_out_of_answers_and_logs(
    keys, every_log, owner, upstreams, async_client
):
    from asgiref.sync import sync_to_async

    token = await sync_to_async(ApiTokenFactory)(owner=owner)
    headers = {"Authorization": f"Bearer {token.secret}"}
    answers = await drive_every_backend(async_client, headers)
    assert answers[0][1] == 200, answers[0]
    # Now the upstreams refuse the platform's keys (401): the callers are told
    # so, without the key.
    upstreams.anthropic.api_key = "a-different-key"
    upstreams.openai.api_key = "a-different-key"
    refused = await drive_every_backend(async_client, headers)
    assert refused[0][1] == 502 and "UPSTREAM_ERROR" in refused[0][2], refused[0]
    assert "credentials" in refused[0][2]
    for path, _, text in answers + refused:
        assert_clean(text, keys, f"the answer of {path}")
    assert every_log.records, "nothing was logged: is the capture working?"
    assert_clean(logged(every_log), keys, "the log")


def test_it_keeps_upstream_keys_out_of_every_page(keys, every_log, world, owner, staff):
    player, admin = Client(), Client()
    player.force_login(owner)
    admin.force_login(staff)
    pages = [
        "/",
        "/games/",
        f"/games/{world.open_game.slug}/",
        f"/games/{world.private_game.slug}/edit/",
        "/games/publish/",
        "/usage/",
        "/tokens/",
        "/invites/",
        "/accounts/sessions/",
        "/api/docs",
        "/api/openapi.json",
        "/healthz",
        "/no-such-page/",
        "/api/no-such-endpoint",
    ]
    for url in pages:
        response = player.get(url)
        assert response.status_code in (200, 404), url
        assert_clean(body(response), keys, url)
    # Staff see more: every admin list and the change pages of the owner's things.
    staff_pages = ["/admin/", "/usage/all/", "/usage/all.csv"]
    from django.contrib import admin as django_admin

    for model in django_admin.site._registry:
        meta = model._meta
        staff_pages.append(f"/admin/{meta.app_label}/{meta.model_name}/")
        staff_pages.append(f"/admin/{meta.app_label}/{meta.model_name}/add/")
    staff_pages += [
        f"/admin/accounts/user/{owner.pk}/change/",
        f"/admin/accounts/apitoken/{world.token.pk}/change/",
        f"/admin/accounts/invite/{world.invite.pk}/change/",
        f"/admin/games/game/{world.private_game.pk}/change/",
        f"/admin/games/conversation/{world.conversation.pk}/change/",
    ]
    for url in staff_pages:
        response = admin.get(url)
        assert response.status_code in (200, 403), f"{url}: {response.status_code}"
        assert_clean(body(response), keys, url)
    assert_clean(logged(every_log), keys, "the log")


def test_it_shows_a_new_token_once_and_logs_it_never(every_log, owner, staff):
    client = Client()
    client.force_login(owner)
    created = client.post("/tokens/", {"name": "laptop", "expires_days": ""})
    assert created.status_code == 200
    [secret] = set(re.findall(r"vgp_[A-Za-z0-9_-]{40,}", body(created)))
    assert "no-store" in created["Cache-Control"]
    token = ApiToken.objects.get(name="laptop")
    assert secret.startswith(token.prefix)
    # Never again: not on the list, not in the admin.
    assert secret not in body(client.get("/tokens/"))
    admin = Client()
    admin.force_login(staff)
    assert secret not in body(admin.get(f"/admin/accounts/apitoken/{token.pk}/change/"))
    assert secret not in body(admin.get("/admin/accounts/apitoken/"))
    # Used, mistyped and revoked: nothing logs it.
    api = Client()
    assert api.get("/api/inference/usage", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    wrong = secret[:-4] + "XXXX"
    assert api.get("/api/inference/usage", HTTP_AUTHORIZATION=f"Bearer {wrong}").status_code == 401
    assert api.get("/api/inference/anthropic/v1/models", HTTP_X_API_KEY=wrong).status_code == 401
    client.post(f"/tokens/{token.pk}/revoke/")
    refused = api.get("/api/inference/usage", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert refused.status_code == 401
    assert secret not in body(refused) and wrong not in body(refused)
    assert "Unauthorized" in logged(every_log)  # the refusals were logged...
    assert secret not in logged(every_log)  # ...without the secret
    assert wrong not in logged(every_log)
    assert token.prefix + "…" not in body(refused)


async def test_it_logs_no_token_offered_on_the_websocket(every_log, owner):
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    wrong = "vgp_" + "W" * 43
    for offer in ({"subprotocols": ["vgp.v1", f"bearer.{wrong}"]}, {}):
        path = "/ws/inference/" if offer else f"/ws/inference/?token={wrong}"
        communicator = WebsocketCommunicator(application, path, **offer)
        connected, code = await communicator.connect()
        assert not connected and code == 4401
    assert wrong not in logged(every_log)
    assert MARK not in logged(every_log)
