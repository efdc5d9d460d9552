from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Install the sample games shipped in games/samples/."

    def handle(self, *args, **options):
        self.stdout.write("No sample games to install yet.")
