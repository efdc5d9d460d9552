from __future__ import annotations

import os
import socket

import pytest
from django.conf import settings

from tests.factories import ApiTokenFactory, UserFactory

PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    services_run = os.environ.get("VGP_TEST_SERVICES") == "1"
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    browser_ok = os.path.exists(CHROMIUM)
    if os.environ.get("VGP_REQUIRE_BROWSER") == "1" and not browser_ok:
        raise pytest.UsageError(f"VGP_REQUIRE_BROWSER=1 but {CHROMIUM} is missing")
    for item in items:
        if "services" in item.keywords and not (
            services_run and on_postgres and settings.REDIS_URL
        ):
            item.add_marker(
                pytest.mark.skip(
                    reason="needs PostgreSQL and Redis: run `make test-services` "
                    "(DATABASE_URL=postgres://…, REDIS_URL=redis://…)"
                )
            )
        if "browser" in item.keywords and not browser_ok:
            item.add_marker(
                pytest.mark.skip(reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
            )


@pytest.fixture(scope="session")
def django_db_modify_db_settings():
    """SQLite tests use a file, not memory: async ORM calls run in worker threads
    and live servers in other processes, and all of them must see one database."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = f"/tmp/vgp-test-{os.getpid()}.sqlite3"


@pytest.fixture(autouse=True)
def _isolated_cache():
    """Each test starts with an empty cache (rate-limit counters live there)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def owner(db):
    return UserFactory(username="owner")


@pytest.fixture
def friend(db):
    return UserFactory(username="friend")


@pytest.fixture
def outsider(db):
    return UserFactory(username="outsider")


@pytest.fixture
def staff(db):
    return UserFactory(username="staff", is_staff=True, is_superuser=True)


@pytest.fixture
def owner_token(owner):
    return ApiTokenFactory(owner=owner, name="owner's token")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client
