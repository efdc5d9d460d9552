"""Start-up with malformed environment values stops with a message naming the
variable; start-up with no variables at all works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Everything the settings read, so the developer's own environment cannot leak in.
READ_BY_SETTINGS = (
    "DJANGO_",
    "DATABASE_",
    "REDIS_URL",
    "ANTHROPIC_",
    "OLLAMA_",
    "OPENAI_",
    "INFERENCE_",
    "DEFAULT_",
    "RATE_LIMIT_",
    "SESSION_IDLE_DAYS",
    "SITE_URL",
    "INVITE",
    "API_TOKEN_",
    "GAME_",
    "QUOTA_",
    "USAGE_",
    "SQLITE_",
    "MEDIA_ROOT",
    "LOG_LEVEL",
)


def _start(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(READ_BY_SETTINGS)}
    clean.update(DJANGO_SETTINGS_MODULE="config.settings", DJANGO_SECRET_KEY="x" * 50)
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_starts_with_no_configuration():
    result = _start()

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("DJANGO_DEBUG", "yes please", "expected true or false"),
        ("DEFAULT_TOKEN_LIMIT", "lots", "expected a whole number"),
        ("DEFAULT_DAILY_TOKEN_LIMIT", "-5", "must be at least 0"),
        ("DATABASE_URL", "mysql://x", "expected sqlite"),
        ("REDIS_URL", "http://x", "expected a URL starting with redis://"),
        ("SESSION_IDLE_DAYS", "0", "must be at least 1"),
        ("OLLAMA_URL", "localhost:11434", "expected http(s)://"),
        ("INFERENCE_DEFAULT_BACKEND", "gpt", "expected one of"),
        ("INFERENCE_TIMEOUT_S", "soon", "expected a number"),
        ("DJANGO_ALLOWED_HOSTS", "a,,b", "empty item"),
        ("SITE_URL", "games.example.org", "expected a URL"),
    ],
)
def test_it_stops_on_a_malformed_value(name, value, says):
    result = _start(**{name: value})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{name}: " in result.stderr
    assert says in result.stderr


def test_it_stops_on_an_unreadable_secret_file(tmp_path):
    result = _start(DJANGO_SECRET_KEY_FILE=str(tmp_path / "missing"))

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY_FILE: cannot read" in result.stderr


def test_it_reads_the_secret_key_from_a_file(tmp_path):
    key_file = tmp_path / "secret"
    key_file.write_text("from-a-file-" + "k" * 40 + "\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(READ_BY_SETTINGS)}
    clean.update(DJANGO_SETTINGS_MODULE="config.settings", DJANGO_SECRET_KEY_FILE=str(key_file))

    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.SECRET_KEY)"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-a-file-" + "k" * 40
