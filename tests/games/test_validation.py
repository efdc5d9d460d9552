from __future__ import annotations

import stat

import pytest

from games.validation import GamePackageError, validate_game_package
from tests.games.conftest import INDEX, make_zip


def rejects(archive, *words):
    with pytest.raises(GamePackageError) as caught:
        validate_game_package(archive)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    return message


def test_it_accepts_a_good_package():
    package = validate_game_package(make_zip({"index.html": INDEX, "js/game.js": b"1;"}))
    assert sorted(m.path for m in package.members) == ["index.html", "js/game.js"]


def test_it_strips_a_single_top_folder():
    archive = make_zip({"my-game/": b"", "my-game/index.html": INDEX, "my-game/a/b.css": b"p{}"})
    package = validate_game_package(archive)
    assert sorted(m.path for m in package.members) == ["a/b.css", "index.html"]


def test_it_skips_archiver_debris():
    archive = make_zip({"index.html": INDEX, "__MACOSX/._index.html": b"x", ".DS_Store": b"x"})
    assert [m.path for m in validate_game_package(archive).members] == ["index.html"]


def test_it_rejects_zip_slip():
    rejects(make_zip({"index.html": INDEX, "../evil.js": b"1"}), "'../evil.js'", "..")


def test_it_rejects_an_absolute_path():
    rejects(make_zip({"index.html": INDEX, "/etc/evil.js": b"1"}), "absolute", "/etc/evil.js")


def test_it_rejects_backslashes_and_drive_letters():
    rejects(make_zip({"index.html": INDEX, "a\\b.js": b"1"}), "backslash")
    rejects(make_zip({"index.html": INDEX, "C:/b.js": b"1"}), "drive letter")


def test_it_rejects_a_symlink_member():
    archive = make_zip(
        {"index.html": INDEX, "link.js": b"/etc/passwd"}, modes={"link.js": stat.S_IFLNK | 0o777}
    )
    rejects(archive, "symbolic link", "link.js")


@pytest.mark.parametrize("kind", [stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK])
def test_it_rejects_device_and_special_files(kind):
    archive = make_zip({"index.html": INDEX, "dev.bin": b""}, modes={"dev.bin": kind | 0o644})
    rejects(archive, "special files", "dev.bin")


def test_it_rejects_an_upload_over_the_limit(settings):
    settings.GAME_MAX_UPLOAD_BYTES = 100
    rejects(make_zip({"index.html": INDEX + b"x" * 500}), "upload", "limit")


def test_it_rejects_too_much_unpacked_data(settings):
    settings.GAME_MAX_UNPACKED_BYTES = 1000
    rejects(
        make_zip({"index.html": INDEX, "big.txt": bytes(range(256)) * 8}), "Unpacked", "big.txt"
    )


def test_it_rejects_too_many_files(settings):
    settings.GAME_MAX_FILES = 3
    files = {"index.html": INDEX, **{f"f{i}.js": b"1" for i in range(5)}}
    rejects(make_zip(files), "more than 3 files")


def test_it_rejects_a_high_compression_ratio():
    archive = make_zip({"index.html": INDEX, "zeros.bin": b"\0" * (4 * 1024 * 1024)})
    rejects(archive, "compression ratio", "zeros.bin", "zip bomb")


def test_it_requires_index_html():
    rejects(make_zip({"main.html": INDEX}), "No index.html")
    rejects(make_zip({"a/index.html": INDEX, "b/x.js": b"1"}), "No index.html")


def test_it_rejects_a_disallowed_file_type():
    rejects(make_zip({"index.html": INDEX, "tool.exe": b"MZ"}), "'tool.exe'", ".exe")
    rejects(make_zip({"index.html": INDEX, "Makefile": b"all:"}), "no extension")


def test_it_rejects_a_file_that_is_not_a_zip():
    import io

    rejects(io.BytesIO(b"just some text, not an archive"), "not a zip")


def test_it_rejects_a_path_held_twice():
    rejects(make_zip({"index.html": INDEX, "A.js": b"1", "a.js": b"2"}), "twice")
