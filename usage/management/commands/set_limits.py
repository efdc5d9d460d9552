from django.core.management.base import BaseCommand, CommandError

from usage.management.commands._args import get_user
from usage.services import user_limits_set


def _limit(value: str, *, option: str) -> int | None:
    """`default` clears the limit (the configured default applies), `unlimited` or
    0 lifts it (a limit of 0 means unlimited, as for the configured defaults),
    a positive number sets it."""
    value = value.strip().lower()
    if value == "default":
        return None
    if value == "unlimited":
        return 0
    try:
        number = int(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise CommandError(
            f"{option}: expected a number of tokens, 'default' or 'unlimited', got {value!r}."
        ) from None
    if number < 0:
        raise CommandError(f"{option}: a limit cannot be negative.")
    return number


def _describe(own: int | None, effective: int | None, unit: str) -> str:
    shown = "unlimited" if effective is None else f"{effective:,} {unit}"
    return f"{shown} (the default)" if own is None else shown


class Command(BaseCommand):
    help = (
        "Set a user's token limits. N is a number of tokens; 'default' returns to the "
        "configured default; 'unlimited' (or 0) lifts the limit."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--daily", metavar="N", help="Tokens per usage day.")
        parser.add_argument("--total", metavar="N", help="Tokens in total.")
        parser.add_argument("--rate", metavar="N", help="Inference requests per minute.")

    def handle(self, *args, username, daily=None, total=None, rate=None, **options):
        if daily is None and total is None and rate is None:
            raise CommandError("Nothing to set: give --daily, --total and/or --rate.")
        user = get_user(username)
        user_limits_set(
            user=user,
            daily=... if daily is None else _limit(daily, option="--daily"),
            total=... if total is None else _limit(total, option="--total"),
            rate=... if rate is None else _limit(rate, option="--rate"),
        )
        user.refresh_from_db()
        daily_text = _describe(user.daily_token_limit, user.effective_daily_token_limit, "tokens")
        total_text = _describe(user.token_limit, user.effective_token_limit, "tokens")
        rate_text = _describe(
            user.rate_limit_per_minute, user.effective_rate_limit_per_minute, "requests"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Limits of {username}: daily {daily_text}, total {total_text}, "
                f"rate {rate_text} a minute."
            )
        )
