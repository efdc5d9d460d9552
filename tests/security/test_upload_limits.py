"""Upload limits: a hostile game package is refused before anything is written.

tests/games/test_validation.py covers each rule on its own: zip slip
(`test_it_rejects_zip_slip`), absolute paths, backslashes and drive letters,
symbolic links, devices/pipes/sockets, the upload size, the unpacked size,
the number of files, the compression ratio (zip bomb), a missing index.html,
file types, non-zips, and a path held twice. This module adds what an attacker
would try next: lying sizes in the zip's headers, nested archives, and the
same attacks through the publish page, where a refusal must be a form error
(never a 500) that leaves no file and no game behind.
"""

from __future__ import annotations

import io
import struct
import zipfile

import pytest
from django.test import Client

from games.models import Game
from games.storage import games_root, package_install
from games.validation import GamePackageError, validate_game_package
from tests.security.conftest import INDEX, make_zip

pytestmark = pytest.mark.django_db


def _declare_size(archive: io.BytesIO, name: str, size: int) -> io.BytesIO:
    """The archive with `name`'s uncompressed size in the central directory
    (what zip readers trust) replaced by `size`."""
    data = bytearray(archive.getvalue())
    position = data.find(b"PK\x01\x02")
    while position != -1:
        name_length = struct.unpack_from("<H", data, position + 28)[0]
        if data[position + 46 : position + 46 + name_length] == name.encode():
            struct.pack_into("<I", data, position + 24, size)
        position = data.find(b"PK\x01\x02", position + 4)
    return io.BytesIO(bytes(data))


def _files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_it_refuses_a_member_that_declares_a_huge_size(settings):
    archive = _declare_size(make_zip({"index.html": INDEX, "a.js": b"1;"}), "a.js", 2**32 - 1)
    with pytest.raises(GamePackageError, match=r"Unpacked|compression ratio"):
        validate_game_package(archive)


def test_it_never_unpacks_past_a_size_that_is_a_lie(media_root):
    # Declares 100 bytes, holds 8 MiB of zeros: passes the checks on its headers...
    bomb = _declare_size(make_zip({"index.html": INDEX, "a.js": b"\0" * (8 << 20)}), "a.js", 100)
    package = validate_game_package(bomb)
    # ...and is stopped while unpacking, with nothing left on disk.
    with pytest.raises(GamePackageError):
        package_install(slug="liar", package=package)
    assert _files(games_root()) == []


def test_it_refuses_a_nested_archive():
    inner = make_zip({"zeros.txt": b"\0" * (8 << 20)}).getvalue()
    with pytest.raises(GamePackageError, match=r"\.zip are not allowed"):
        validate_game_package(make_zip({"index.html": INDEX, "inner.zip": inner}))


def test_it_stores_a_disguised_archive_without_opening_it(media_root):
    # A zip renamed to an allowed type is an opaque file: stored at its packed
    # size, never expanded, so a nested bomb stays a small file.
    inner = make_zip({"zeros.txt": b"\0" * (8 << 20)}).getvalue()
    package = validate_game_package(make_zip({"index.html": INDEX, "level.bin": inner}))
    live = package_install(slug="nested", package=package)
    assert (live / "level.bin").stat().st_size == len(inner) < 64 * 1024


def test_it_refuses_many_small_bombs_together(settings):
    # Each member is under the ratio's 1 MiB floor; the archive as a whole is not.
    files = {"index.html": INDEX, **{f"z{i}.txt": b"\0" * (900 << 10) for i in range(4)}}
    with pytest.raises(GamePackageError, match="as a whole"):
        validate_game_package(make_zip(files))


HOSTILE = {
    "zip slip": make_zip({"index.html": INDEX, "../../evil.js": b"1"}),
    "absolute path": make_zip({"index.html": INDEX, "/etc/evil.js": b"1"}),
    "zip bomb": make_zip({"index.html": INDEX, "z.txt": b"\0" * (4 << 20)}),
    "lying size": _declare_size(
        make_zip({"index.html": INDEX, "a.js": b"\0" * (8 << 20)}), "a.js", 100
    ),
}


@pytest.mark.parametrize("attack", HOSTILE)
def test_it_refuses_hostile_packages_on_the_publish_page(attack, owner, media_root):
    from django.contrib.auth.models import Permission

    owner.user_permissions.add(Permission.objects.get(codename="publish_game"))
    client = Client()
    client.force_login(owner)
    upload = io.BytesIO(HOSTILE[attack].getvalue())
    upload.name = "game.zip"
    form = {"title": "Hostile", "slug": "hostile", "visibility": "everyone", "package": upload}
    response = client.post("/games/publish/", form)
    assert response.status_code == 200, attack  # the form again, with the problem named
    assert response.context["form"].errors, attack
    assert not Game.objects.filter(slug="hostile").exists()
    assert _files(games_root()) == []
    assert not (media_root.parent / "evil.js").exists()
    assert zipfile.is_zipfile(io.BytesIO(HOSTILE[attack].getvalue()))


def test_it_keeps_the_old_files_when_a_new_package_lies(owner, world):
    client = Client()
    client.force_login(owner)
    game = world.open_game
    upload = io.BytesIO(HOSTILE["lying size"].getvalue())
    upload.name = "game.zip"
    form = {"title": game.title, "visibility": "everyone", "package": upload}
    response = client.post(f"/games/{game.slug}/edit/", form)
    assert response.status_code == 200 and "package" in response.context["form"].errors
    assert client.get(f"/games/{game.slug}/files/game.js").status_code == 200
    version = game.version
    game.refresh_from_db()
    assert game.version == version


def test_it_keeps_the_old_settings_when_a_new_package_lies(owner, world):
    client = Client()
    client.force_login(owner)
    game = world.open_game
    upload = io.BytesIO(HOSTILE["lying size"].getvalue())
    upload.name = "game.zip"
    form = {"title": "Renamed by a refused edit", "visibility": "everyone", "package": upload}
    response = client.post(f"/games/{game.slug}/edit/", form)
    assert "package" in response.context["form"].errors
    game.refresh_from_db()
    assert game.title != "Renamed by a refused edit"
