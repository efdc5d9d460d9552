from __future__ import annotations

import io
import stat
import zipfile

import pytest
from django.contrib.auth.models import Permission

from games import services
from games.models import Game
from games.validation import validate_game_package

INDEX = b"<!doctype html><title>t</title><script src='game.js'></script>"


def make_zip(files: dict[str, bytes], *, modes: dict[str, int] | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = (modes or {}).get(name, stat.S_IFREG | 0o644)
            info.external_attr = mode << 16
            info.create_system = 3
            archive.writestr(info, data)
    buffer.seek(0)
    return buffer


def package(files: dict[str, bytes] | None = None):
    return validate_game_package(make_zip(files or {"index.html": INDEX, "game.js": b"1;"}))


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def publisher(owner):
    owner.user_permissions.add(Permission.objects.get(codename="publish_game"))
    return owner


@pytest.fixture
def friends_game(owner, friend):
    """A friends-only game of `owner`, shared with `friend`."""
    game = services.game_create(
        slug="secret-game",
        owner=owner,
        package=package(),
        players=[friend],
        title="Secret Game",
        visibility=Game.Visibility.FRIENDS,
    )
    return game


@pytest.fixture
def open_game(owner):
    return services.game_create(slug="open-game", owner=owner, package=package(), title="Open Game")
