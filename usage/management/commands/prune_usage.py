from django.core.management.base import BaseCommand, CommandError

from usage.clock import usage_day
from usage.management.commands._args import parse_day
from usage.services import usage_records_prune


class Command(BaseCommand):
    help = (
        "Delete usage records of the days before a date. The counters the limits are "
        "checked against are not changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--before", metavar="YYYY-MM-DD", required=True)

    def handle(self, *args, before, **options):
        day = parse_day(before, option="--before")
        if day > usage_day():
            raise CommandError(
                f"--before {day} is in the future: that would delete today's records."
            )
        deleted = usage_records_prune(before=day)
        noun = "record" if deleted == 1 else "records"
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {deleted} usage {noun} from before {day}. Counters are unchanged."
            )
        )
