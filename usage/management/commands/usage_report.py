import csv
import json

from django.core.management.base import BaseCommand

from usage.management.commands._args import get_user, parse_day
from usage.selectors import usage_report_rows

COLUMNS = [
    ("user", "user__username"),
    ("model", "model"),
    ("requests", "requests"),
    ("prompt_tokens", "prompt_tokens"),
    ("completion_tokens", "completion_tokens"),
    ("total_tokens", "total_tokens"),
    ("cost_usd", "cost"),
]


class Command(BaseCommand):
    help = "Requests, tokens and estimated cost per user and model, from the usage records."

    def add_arguments(self, parser):
        parser.add_argument("--since", metavar="YYYY-MM-DD", help="From this usage day on.")
        parser.add_argument("--user", metavar="USERNAME", help="Only this user.")
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")

    def handle(self, *args, since=None, user=None, format="table", **options):
        since_day = parse_day(since, option="--since") if since else None
        if user:
            get_user(user)
        rows = [
            {name: row[key] for name, key in COLUMNS}
            for row in usage_report_rows(since=since_day, username=user)
        ]
        if format == "json":
            for row in rows:
                # A string keeps the exact decimal; a float would round it.
                row["cost_usd"] = f"{row['cost_usd']:.8f}"
            self.stdout.write(json.dumps(rows, indent=2))
        elif format == "csv":
            writer = csv.writer(self.stdout)
            writer.writerow([name for name, _ in COLUMNS])
            writer.writerows([row[name] for name, _ in COLUMNS] for row in rows)
        else:
            self._table(rows)

    def _table(self, rows):
        if not rows:
            self.stdout.write("No usage recorded in that period.")
            return
        header = ["User", "Model", "Requests", "Prompt", "Completion", "Total", "Cost (USD)"]
        body = [
            [
                row["user"],
                row["model"],
                f"{row['requests']:,}",
                f"{row['prompt_tokens']:,}",
                f"{row['completion_tokens']:,}",
                f"{row['total_tokens']:,}",
                f"{row['cost_usd']:.4f}",
            ]
            for row in rows
        ]
        body.append(
            [
                "all",
                "",
                f"{sum(r['requests'] for r in rows):,}",
                f"{sum(r['prompt_tokens'] for r in rows):,}",
                f"{sum(r['completion_tokens'] for r in rows):,}",
                f"{sum(r['total_tokens'] for r in rows):,}",
                f"{sum(r['cost_usd'] for r in rows):.4f}",
            ]
        )
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

        def render(line):
            cells = [
                cell.ljust(width) if i < 2 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            ]
            return "  ".join(cells).rstrip()

        self.stdout.write(render(header))
        self.stdout.write("  ".join("-" * width for width in widths))
        for line in body[:-1]:
            self.stdout.write(render(line))
        self.stdout.write("  ".join("-" * width for width in widths))
        self.stdout.write(render(body[-1]))
