"""Where game files live on disk: `MEDIA_ROOT/games/<slug>/`.

A new version is unpacked into a hidden temporary folder beside the live one
(same file system, so renames are atomic), then swapped in: players see either
the old files or the new ones, never a half-written mix.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path

from django.conf import settings

from games.validation import GamePackage, GamePackageError

CHUNK_BYTES = 64 * 1024


def games_root() -> Path:
    return Path(settings.MEDIA_ROOT) / "games"


def game_dir(slug: str) -> Path:
    return games_root() / slug


def _extract(package: GamePackage, target: Path) -> None:
    with package.open() as archive:
        for member in package.members:
            destination = target.joinpath(*member.path.split("/"))
            destination.parent.mkdir(parents=True, exist_ok=True)
            # The sizes in a zip's headers are claims: stop at the claimed size
            # so a lying member cannot unpack past the checked limits.
            remaining = member.info.file_size
            with archive.open(member.info) as source, open(destination, "xb") as out:
                while chunk := source.read(min(CHUNK_BYTES, remaining + 1)):
                    remaining -= len(chunk)
                    if remaining < 0:
                        raise GamePackageError(
                            f"{member.info.filename!r} unpacks to more than its header says."
                        )
                    out.write(chunk)


def package_install(*, slug: str, package: GamePackage) -> Path:
    """Unpack `package` as the files of game `slug`, replacing any old ones atomically."""
    root = games_root()
    root.mkdir(parents=True, exist_ok=True)
    # Slugs start with a letter or digit, so these dot names never collide with a game.
    staging = Path(tempfile.mkdtemp(prefix=f".{slug}.new-", dir=root))
    try:
        _extract(package, staging)
    # BadZipFile is what zipfile raises when a member's data does not match its
    # header (a bad CRC: a member that holds more than it declares, cut short).
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, GamePackageError):
            raise
        raise GamePackageError(f"The archive could not be unpacked: {exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.chmod(0o755)
    live = game_dir(slug)
    retired = None
    if live.exists():
        retired = root / f".{slug}.old-{uuid.uuid4().hex}"
        os.rename(live, retired)
    os.rename(staging, live)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
    return live


def package_remove(*, slug: str) -> None:
    shutil.rmtree(game_dir(slug), ignore_errors=True)


def game_file_path(slug: str, path: str) -> Path | None:
    """The file at `path` inside the game's folder, or None; never a path outside it."""
    if not path or path.endswith("/"):
        path += "index.html"
    if "\\" in path or "\x00" in path or path.startswith("/"):
        return None
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    base = game_dir(slug).resolve()
    candidate = base.joinpath(*parts).resolve()
    # resolve() follows links; a path that lands outside the folder is refused
    # even though the upload checks never let a link in.
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate
