"""Checks a game package (a zip) before a single byte of it is written to disk.

A package is hostile until proven otherwise: it may try to write outside its
folder (`../x`, `/etc/x`, `C:\\x`), smuggle in links or device files, or unpack
into far more than it weighs (a zip bomb). Every rejection names the problem
and the member, so that the person uploading can fix the archive.
"""

from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass, field
from typing import IO

from django.conf import settings

ALLOWED_EXTENSIONS = frozenset(
    {
        *("html", "js", "mjs", "css", "json", "map", "wasm"),
        *("png", "jpg", "jpeg", "gif", "webp", "svg", "ico"),
        *("mp3", "ogg", "wav", "woff", "woff2", "ttf"),
        *("txt", "md", "glb", "gltf", "bin"),
    }
)
# Debris that archivers add on their own; skipped rather than refused, so that a
# zip made with the Finder or Explorer uploads as it is.
IGNORED_PARTS = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})
# Small members cannot blow anything up, and tiny repetitive files (a blank
# level map) legitimately compress very well: the ratio only counts above this.
RATIO_MIN_BYTES = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class GamePackageError(ValueError):
    """The archive was refused; the message says why, for the uploader."""


@dataclass(frozen=True, slots=True)
class PackageMember:
    info: zipfile.ZipInfo
    # Where the file goes, relative to the game's folder (top folder stripped).
    path: str


@dataclass(slots=True)
class GamePackage:
    """A checked archive: what to extract, and from where."""

    source: IO[bytes]
    members: list[PackageMember] = field(default_factory=list)
    unpacked_bytes: int = 0

    def open(self) -> zipfile.ZipFile:
        self.source.seek(0)
        return zipfile.ZipFile(self.source)


def _size_of(upload: IO[bytes]) -> int:
    size = getattr(upload, "size", None)
    if size is not None:
        return int(size)
    position = upload.tell()
    upload.seek(0, 2)
    size = upload.tell()
    upload.seek(position)
    return size


def _check_name(name: str) -> list[str]:
    """The path components of a member name, or a GamePackageError."""
    if not name:
        raise GamePackageError("The archive has a member with an empty name.")
    if _CONTROL.search(name):
        raise GamePackageError(f"{name!r}: control characters in a file name are not allowed.")
    if "\\" in name:
        raise GamePackageError(f"{name!r}: backslashes are not allowed in paths (use '/').")
    if _DRIVE.match(name):
        raise GamePackageError(f"{name!r}: drive letters are not allowed (paths must be relative).")
    if name.startswith("/"):
        raise GamePackageError(f"{name!r}: absolute paths are not allowed.")
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        raise GamePackageError(f"{name!r}: '..' would write outside the game's folder.")
    if any(part in ("", ".") for part in parts):
        raise GamePackageError(f"{name!r}: empty or '.' path components are not allowed.")
    return parts


def _check_mode(info: zipfile.ZipInfo) -> None:
    mode = info.external_attr >> 16
    if not mode:
        return  # made on a system that records no Unix mode: a plain file or folder
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise GamePackageError(f"{info.filename!r}: symbolic links are not allowed.")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise GamePackageError(
            f"{info.filename!r}: special files (devices, pipes, sockets) are not allowed."
        )


def _check_ratio(name: str, unpacked: int, packed: int) -> None:
    limit = settings.GAME_MAX_COMPRESSION_RATIO
    if unpacked < RATIO_MIN_BYTES:
        return
    if packed <= 0 or unpacked / packed > limit:
        ratio = "an unbounded" if packed <= 0 else f"a {unpacked / packed:.0f}:1"
        raise GamePackageError(
            f"{name}: {ratio} compression ratio is over the limit of {limit}:1 "
            "(this looks like a zip bomb)."
        )


def _strip_top_folder(entries: list[tuple[zipfile.ZipInfo, list[str]]]) -> int:
    """How many leading components to drop: 0, or 1 for a single top folder."""
    files = [parts for info, parts in entries if not info.is_dir()]
    if ["index.html"] in files:
        return 0
    tops = {parts[0] for _, parts in entries}
    if len(tops) == 1 and [*tops, "index.html"] in files:
        return 1
    raise GamePackageError(
        "No index.html at the top of the archive (or inside a single top folder)."
    )


def validate_game_package(upload: IO[bytes]) -> GamePackage:
    """Check an uploaded archive against every rule; raises GamePackageError."""
    size = _size_of(upload)
    if size > settings.GAME_MAX_UPLOAD_BYTES:
        raise GamePackageError(
            f"The upload is {size:,} bytes; the limit is {settings.GAME_MAX_UPLOAD_BYTES:,}."
        )
    upload.seek(0)
    try:
        archive = zipfile.ZipFile(upload)
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise GamePackageError("This file is not a zip archive.") from None

    entries: list[tuple[zipfile.ZipInfo, list[str]]] = []
    file_count = unpacked = packed = 0
    for info in infos:
        parts = _check_name(info.filename)
        _check_mode(info)
        if IGNORED_PARTS.intersection(parts):
            continue
        entries.append((info, parts))
        if info.is_dir():
            continue
        extension = parts[-1].rpartition(".")[2].lower() if "." in parts[-1] else ""
        if extension not in ALLOWED_EXTENSIONS:
            raise GamePackageError(
                f"{info.filename!r}: files of type "
                f"{'.' + extension if extension else '(no extension)'} are not allowed. "
                f"Allowed: {', '.join(sorted(ALLOWED_EXTENSIONS))}."
            )
        _check_ratio(repr(info.filename), info.file_size, info.compress_size)
        file_count += 1
        unpacked += info.file_size
        packed += info.compress_size
        if file_count > settings.GAME_MAX_FILES:
            raise GamePackageError(f"The archive has more than {settings.GAME_MAX_FILES:,} files.")
        if unpacked > settings.GAME_MAX_UNPACKED_BYTES:
            raise GamePackageError(
                f"Unpacked, the archive would be over {settings.GAME_MAX_UNPACKED_BYTES:,} "
                f"bytes (reached at {info.filename!r})."
            )
    _check_ratio("The archive as a whole", unpacked, packed)

    strip = _strip_top_folder(entries)
    package = GamePackage(source=upload, unpacked_bytes=unpacked)
    seen: set[str] = set()
    for info, parts in entries:
        if info.is_dir() or len(parts) <= strip:
            continue
        path = "/".join(parts[strip:])
        # Two members that land on one file (case-insensitive file systems too)
        # would make the result depend on extraction order.
        if path.lower() in seen:
            raise GamePackageError(f"{info.filename!r}: the archive holds this path twice.")
        seen.add(path.lower())
        package.members.append(PackageMember(info=info, path=path))
    return package
