"""The owner's private world, marked so that a leak is easy to see.

Every object below belongs to `owner` and carries MARK in a field a page or an
answer could show (a token's name, an invite's note, a conversation's text, a
game's title, a model name in the usage records, a session's browser). A test
that finds MARK in a response given to anyone else has found a cross-user read.
"""

from __future__ import annotations

import io
import stat
import zipfile
from types import SimpleNamespace

import pytest
from allauth.usersessions.models import UserSession
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.services import invite_create
from games import services as game_services
from games.models import Game
from games.validation import validate_game_package
from tests.factories import ApiTokenFactory

MARK = "zq7-owner-private"
INDEX = b"<!doctype html><title>game</title><script src='game.js'></script>"


def make_zip(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.create_system = 3
            archive.writestr(info, data)
    buffer.seek(0)
    return buffer


def game_package():
    return validate_game_package(make_zip({"index.html": INDEX, "game.js": b"1;"}))


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def world(owner):
    """The owner's objects; nobody else has been given access to any of them."""
    from usage.services import quota_reserve, quota_settle

    owner.user_permissions.add(Permission.objects.get(codename="publish_game"))
    owner.invites_remaining = 1
    owner.save(update_fields=["invites_remaining"])
    private_game = game_services.game_create(
        slug="owner-private-game",
        owner=owner,
        package=game_package(),
        players=[],
        title=f"{MARK} game",
        visibility=Game.Visibility.FRIENDS,
    )
    # Visible to everyone, but still the owner's to change.
    open_game = game_services.game_create(
        slug="owner-open-game", owner=owner, package=game_package(), title="Open Game"
    )
    token = ApiTokenFactory(owner=owner, name=f"{MARK} token")
    invite = invite_create(created_by=owner, note=f"{MARK} invite note")
    conversation = game_services.conversation_create(
        owner=owner, game=open_game, system_prompt=f"{MARK} system prompt"
    )
    game_services.conversation_add_turns(
        conversation=conversation,
        user_content=f"{MARK} conversation question",
        author=owner,
        reply_content=f"{MARK} conversation answer",
        tokens=10,
    )
    from inference.backends.base import Usage

    reservation = quota_reserve(user=owner, game=private_game, prompt_estimate=5, max_tokens=5)
    quota_settle(
        reservation=reservation,
        usage=Usage(prompt_tokens=5, completion_tokens=5),
        outcome="ok",
        backend="demo",
        model=f"{MARK}-model",
        latency_ms=10,
        ttft_ms=5,
    )
    browser = Client(HTTP_USER_AGENT=f"{MARK} browser/1.0")
    browser.force_login(owner)
    browser.get("/")
    session = UserSession.objects.get(user=owner)
    return SimpleNamespace(
        private_game=private_game,
        open_game=open_game,
        token=token,
        invite=invite,
        conversation=conversation,
        session=session,
    )
