from django.core.management.base import BaseCommand

from usage.services import release_expired_reservations


class Command(BaseCommand):
    help = "Free token reservations that outlived their request (a stopped worker's)."

    def handle(self, *args, **options):
        released = release_expired_reservations()
        noun = "reservation" if released == 1 else "reservations"
        self.stdout.write(self.style.SUCCESS(f"Released {released} expired {noun}."))
