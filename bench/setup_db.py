"""Creates the benchmark's users and API tokens in a freshly migrated database.

Run with the benchmark's environment (DATABASE_URL and friends); prints the
token secrets as JSON, one per user, for the load generator.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import django

# The platform comes from the working directory (a checkout), `bench` from here.
sys.path[:0] = [os.getcwd(), str(Path(__file__).resolve().parent.parent)]


def main() -> None:
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    from accounts.models import User
    from accounts.services import api_token_create

    secrets = []
    for i in range(users):
        user = User.objects.create_user(username=f"bench{i}", password=None)
        _, secret = api_token_create(owner=user, name="bench")
        secrets.append(secret)
    print(json.dumps(secrets))


if __name__ == "__main__":
    main()
