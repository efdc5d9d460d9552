from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from games.models import Game
from games.storage import game_dir


def run():
    out = StringIO()
    call_command("load_sample_games", stdout=out)
    return out.getvalue()


def test_it_installs_both_samples(db):
    output = run()
    assert "Installed dungeon-master" in output and "Installed riddle-sphinx" in output
    dm = Game.objects.get(slug="dungeon-master")
    assert dm.default_model == "demo-storyteller" and dm.system_prompt
    assert (game_dir("dungeon-master") / "index.html").exists()
    assert (game_dir("riddle-sphinx") / "game.js").exists()
    assert not (game_dir("riddle-sphinx") / "game.json").exists()


def test_it_is_idempotent(db):
    run()
    output = run()
    assert Game.objects.count() == 2
    assert "dungeon-master is up to date (version 1)" in output
    assert set(Game.objects.values_list("version", flat=True)) == {1}


def test_it_updates_a_changed_game(db):
    run()
    Game.objects.filter(slug="riddle-sphinx").update(title="Old title")
    (game_dir("riddle-sphinx") / "game.js").write_text("changed")
    output = run()
    game = Game.objects.get(slug="riddle-sphinx")
    assert "Updated riddle-sphinx (title, files), version 2" in output
    assert game.title == "Riddle of the Sphinx"
