from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print its secret (the last line of the output)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="What the token is for.")
        parser.add_argument("--game", default=None, help="Slug of the only game it works for.")
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args, username, name, game, expires_days, **options):
        from games.models import Game

        owner = User.objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"No user named {username!r}.")
        scoped_game = None
        if game is not None:
            scoped_game = Game.objects.filter(slug=game).first()
            if scoped_game is None:
                raise CommandError(f"No game with the slug {game!r}.")
        try:
            token, secret = api_token_create(
                owner=owner, name=name, game=scoped_game, expires_days=expires_days
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        scope = f"the game {scoped_game.slug!r}" if scoped_game else "any game"
        expiry = f"until {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "forever"
        self.stdout.write(
            f"Token {token.name!r} for {owner.username}, valid for {scope}, {expiry}. "
            "The secret is shown only this once:"
        )
        self.stdout.write(secret)
