from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from usage.clock import usage_day
from usage.models import UsageRecord


def record(user, game, tokens, day=None):
    return UsageRecord.objects.create(
        user=user,
        game=game,
        backend="demo",
        model="demo",
        total_tokens=tokens,
        outcome="ok",
        day=day or usage_day(),
    )


def test_it_requires_login(client):
    assert client.get(reverse("games:list")).status_code == 302


def test_it_lists_only_visible_games(client, outsider, friends_game, open_game):
    client.force_login(outsider)
    html = client.get(reverse("games:list")).content.decode()
    assert "Open Game" in html and "Secret Game" not in html


def test_it_shows_the_players_usage_per_game(client, friend, outsider, friends_game, open_game):
    record(friend, friends_game, 120)
    record(friend, friends_game, 30, day=usage_day() - timezone.timedelta(days=3))
    record(outsider, friends_game, 9999)
    client.force_login(friend)
    response = client.get(reverse("games:list"))
    usage = {game.slug: u for game, u in response.context["rows"]}
    assert (usage["secret-game"].today, usage["secret-game"].total) == (120, 150)
    assert (usage["open-game"].today, usage["open-game"].total) == (0, 0)
    assert "Publish a game" not in response.content.decode()


def test_it_links_to_publishing_for_publishers(client, publisher):
    client.force_login(publisher)
    assert "Publish a game" in client.get(reverse("games:list")).content.decode()
