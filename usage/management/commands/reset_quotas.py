from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from usage.management.commands._args import get_user
from usage.services import quota_reset


class Command(BaseCommand):
    help = (
        "Zero counted token usage (what the limits are checked against) for one user "
        "or everyone. The usage records, and so history and cost, are kept."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", metavar="USERNAME", help="Only this user.")
        window = parser.add_mutually_exclusive_group(required=True)
        window.add_argument("--daily", action="store_const", const="daily", dest="window")
        window.add_argument("--total", action="store_const", const="total", dest="window")
        window.add_argument(
            "--all", action="store_const", const="all", dest="window", help="Daily and total."
        )

    def handle(self, *args, user=None, window, **options):
        users = get_user_model().objects.filter(pk=get_user(user).pk) if user else None
        count = quota_reset(users=users, window=window)
        what = {"daily": "daily usage", "total": "total usage", "all": "daily and total usage"}
        whom = f"user {user}" if user else f"{count} user{'' if count == 1 else 's'}"
        if user and count == 0:
            self.stdout.write(f"User {user} has no usage to reset.")
            return
        self.stdout.write(self.style.SUCCESS(f"Reset {what[window]} of {whom}."))
