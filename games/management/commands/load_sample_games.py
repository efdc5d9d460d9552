"""Install or update the sample games shipped in games/samples/.

Each sample is a folder with the game's files and a `game.json` holding the
Game row's settings. The folder is zipped in memory and goes through the same
validation and storage as an upload. Running the command again changes nothing
unless a sample did.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from games import services
from games.models import Game
from games.storage import game_dir
from games.validation import GamePackageError, validate_game_package

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"
MANIFEST = "game.json"


def _sample_files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def _zip(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def _installed_files(slug: str) -> dict[str, bytes]:
    root = game_dir(slug)
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


class Command(BaseCommand):
    help = "Install or update the sample games shipped in games/samples/."

    def handle(self, *args, **options):
        folders = sorted(p for p in SAMPLES_DIR.iterdir() if (p / MANIFEST).is_file())
        if not folders:
            raise CommandError(f"No sample games in {SAMPLES_DIR}.")
        for folder in folders:
            self._install(folder)

    def _install(self, folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST).read_text())
        slug = manifest.pop("slug", folder.name)
        files = _sample_files(folder)
        try:
            package = validate_game_package(_zip(files))
        except GamePackageError as exc:
            raise CommandError(f"{slug}: {exc}") from exc
        game = Game.objects.filter(slug=slug).first()
        if game is None:
            game = services.game_create(slug=slug, owner=None, package=package, **manifest)
            self.stdout.write(f"Installed {slug} ({game.title}), version {game.version}.")
            return
        changed = [name for name, value in manifest.items() if getattr(game, name) != value]
        files_changed = _installed_files(slug) != files
        if not changed and not files_changed:
            self.stdout.write(f"{slug} is up to date (version {game.version}).")
            return
        services.game_update(
            game=game,
            package=package if files_changed else None,
            **{name: manifest[name] for name in changed},
        )
        what = ", ".join([*changed, *(["files"] if files_changed else [])])
        self.stdout.write(f"Updated {slug} ({what}), version {game.version}.")
