from __future__ import annotations

from games import services
from games.storage import game_dir, game_file_path
from tests.games.conftest import INDEX, package


def test_it_replaces_the_files_atomically_and_bumps_the_version(open_game):
    assert open_game.version == 1
    assert (game_dir("open-game") / "game.js").exists()
    services.game_update(game=open_game, package=package({"index.html": INDEX, "new.js": b"2;"}))
    open_game.refresh_from_db()
    assert open_game.version == 2
    assert (game_dir("open-game") / "new.js").read_bytes() == b"2;"
    assert not (game_dir("open-game") / "game.js").exists()
    # No staging or retired folders are left behind.
    assert sorted(p.name for p in game_dir("open-game").parent.iterdir()) == ["open-game"]


def test_it_keeps_paths_inside_the_game(open_game):
    assert game_file_path("open-game", "index.html") is not None
    for path in ["../open-game/index.html", "a/../../x", "/etc/passwd", "..", "a\\b", "x\x00"]:
        assert game_file_path("open-game", path) is None
