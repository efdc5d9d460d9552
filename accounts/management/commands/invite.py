from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import NoInvitesLeft, invite_create


class Command(BaseCommand):
    help = "Create a sign-up invite and print its link (the last line of the output)."

    def add_arguments(self, parser):
        parser.add_argument("--uses", type=int, default=1, help="How many sign-ups it allows.")
        parser.add_argument(
            "--expires-days",
            type=int,
            default=None,
            help=f"Days until it expires (default {settings.INVITE_DEFAULT_EXPIRES_DAYS}).",
        )
        parser.add_argument("--by", default=None, help="Username of the inviting user.")
        parser.add_argument("--note", default="", help="A note, e.g. who it is for.")

    def handle(self, *args, uses, expires_days, by, note, **options):
        created_by = None
        if by is not None:
            created_by = User.objects.filter(username=by).first()
            if created_by is None:
                raise CommandError(f"No user named {by!r}.")
        try:
            invite = invite_create(
                created_by=created_by, max_uses=uses, expires_days=expires_days, note=note
            )
        except (NoInvitesLeft, ValidationError) as exc:
            raise CommandError(_message(exc)) from exc
        self.stdout.write(
            f"Invite for {invite.max_uses} sign-up(s), valid until "
            f"{invite.expires_at:%Y-%m-%d %H:%M} UTC:"
        )
        self.stdout.write(settings.SITE_URL + invite.get_absolute_url())


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)
