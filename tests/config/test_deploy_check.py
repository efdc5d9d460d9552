"""Production settings pass Django's deployment checklist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_it_passes_check_deploy_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-" + "y" * 30,
        "DJANGO_DEBUG": "false",
        "DJANGO_HTTPS": "true",
        "DJANGO_ALLOWED_HOSTS": "games.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_it_refuses_to_be_framed_except_for_game_files(client, owner):
    client.force_login(owner)
    assert client.get("/").headers["X-Frame-Options"] == "DENY"


# Django finds its security, CSRF and clickjacking middleware only by their own
# paths; config/checks.py checks the project's subclasses of them the same way.
PRODUCTION = {
    "DEBUG": False,
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
    "SECURE_SSL_REDIRECT": True,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
}


def _deploy_messages(settings, **changes) -> set[str]:
    from django.core import checks

    for name, value in {**PRODUCTION, **changes}.items():
        setattr(settings, name, value)
    found = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    return {message.id for message in found if not message.is_silenced()}


def test_the_middleware_subclasses_pass_the_security_checks(settings):
    assert not {m for m in _deploy_messages(settings) if m.startswith(("config.", "security.W0"))}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("config.middleware.SecurityMiddleware", "config.W001"),
        ("config.middleware.XFrameOptionsMiddleware", "config.W002"),
        ("config.middleware.CsrfViewMiddleware", "config.W003"),
    ],
)
def test_a_missing_security_middleware_is_reported(settings, path, expected):
    middleware = [p for p in settings.MIDDLEWARE if p != path]
    assert expected in _deploy_messages(settings, MIDDLEWARE=middleware)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"SECURE_HSTS_SECONDS": 0}, "security.W004"),
        ({"SECURE_HSTS_INCLUDE_SUBDOMAINS": False}, "security.W005"),
        ({"SECURE_HSTS_PRELOAD": False}, "security.W021"),
        ({"SECURE_CONTENT_TYPE_NOSNIFF": False}, "security.W006"),
        ({"SECURE_SSL_REDIRECT": False}, "security.W008"),
        ({"SECURE_REFERRER_POLICY": None}, "security.W022"),
        ({"SECURE_REFERRER_POLICY": "nobody"}, "security.E023"),
        ({"SECURE_CROSS_ORIGIN_OPENER_POLICY": "anyone"}, "security.E024"),
        ({"X_FRAME_OPTIONS": "SAMEORIGIN"}, "security.W019"),
        ({"CSRF_COOKIE_SECURE": False}, "security.W016"),
    ],
)
def test_the_checks_that_need_the_middleware_still_run(settings, changes, expected):
    assert expected in _deploy_messages(settings, **changes)


def test_django_own_classes_are_left_to_django(settings):
    middleware = [
        p.replace(
            "config.middleware.SecurityMiddleware", "django.middleware.security.SecurityMiddleware"
        )
        for p in settings.MIDDLEWARE
    ]
    found = _deploy_messages(settings, MIDDLEWARE=middleware, SECURE_HSTS_SECONDS=0)
    assert "config.W001" not in found
    assert "security.W004" in found  # from Django's own check, reported once
