from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest
from django.conf import settings

from tests.factories import ApiTokenFactory, UserFactory
from tests.fakes.anthropic import _anthropic_server, anthropic_upstream  # noqa: F401
from tests.fakes.ollama import ollama_server, ollama_server_b, ollama_upstream, ollama_upstream_b  # noqa: F401
from tests.fakes.openai import _openai_server, openai_upstream  # noqa: F401

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


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's, closing what still holds the test database before it is
    dropped (PostgreSQL refuses while anyone is connected): the connections of
    asgiref's thread for sync code (async tests' ORM calls ran there) and of the
    gateway's SQLite thread, and psycopg's pools."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    from inference.services import close_gateway_connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)
    close_gateway_connections()
    for conn in connections.all():
        if conn.settings_dict.get("OPTIONS", {}).get("pool"):
            conn.close_pool()


@pytest.fixture(autouse=True)
def _isolated_cache():
    """Each test starts with an empty cache (rate-limit counters live there)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Argon2 is slow on purpose; every factory-made user would pay for it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


@pytest.fixture(autouse=True)
def _fast_platform(settings):
    """Tests don't wait: the demo model streams at full speed, retries back off
    for milliseconds, and the per-minute rate is out of the way unless a test
    sets it."""
    settings.INFERENCE_DEMO_TOKENS_PER_S = 0
    settings.INFERENCE_RETRY_BASE_S = 0.01
    settings.RATE_LIMIT_PER_MINUTE = 10_000


def upstream_env(*, anthropic, openai, ollama) -> dict[str, str]:
    """Environment for a platform process whose backends are the fakes."""
    return {
        "ANTHROPIC_API_KEY": "sk-ant-platform-key",
        "ANTHROPIC_BASE_URL": anthropic.url,
        "OPENAI_API_KEY": "sk-platform-key",
        "OPENAI_BASE_URL": openai.url + "/v1",
        "OLLAMA_URL": ollama.url,
        "INFERENCE_DEMO_TOKENS_PER_S": "0",
        "INFERENCE_RETRY_BASE_S": "0.01",
        "RATE_LIMIT_PER_MINUTE": "10000",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    }


@pytest.fixture
def upstreams(settings, anthropic_upstream, openai_upstream, ollama_upstream):
    """Point this process's backends at the fake upstreams."""
    settings.ANTHROPIC_API_KEY = "sk-ant-platform-key"
    settings.ANTHROPIC_BASE_URL = anthropic_upstream.url
    settings.OPENAI_API_KEY = "sk-platform-key"
    settings.OPENAI_BASE_URL = openai_upstream.url + "/v1"
    settings.OLLAMA_URLS = [ollama_upstream.url]
    settings.OLLAMA_URL_CONFIGURED = True
    return SimpleNamespace(
        anthropic=anthropic_upstream, openai=openai_upstream, ollama=ollama_upstream
    )


@pytest.fixture(scope="session")
def platform_server(
    django_db_setup, django_db_blocker, _anthropic_server, _openai_server, ollama_server
):
    """The platform under Daphne in its own process, its backends on the fakes."""
    from tests.live import LiveServer

    with django_db_blocker.unblock():
        server = LiveServer(
            upstream_env(anthropic=_anthropic_server, openai=_openai_server, ollama=ollama_server)
        ).start()
    yield server
    server.stop()


@pytest.fixture
def live(platform_server, transactional_db, anthropic_upstream, openai_upstream, ollama_upstream):
    """The running platform, with fresh fakes and committed test data."""
    return platform_server
