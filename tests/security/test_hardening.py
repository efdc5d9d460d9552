"""Settings that hold the rest up: Argon2 for passwords, session cookies that
scripts cannot read and that end, HTTPS-only cookies and HSTS in production.
(`manage.py check --deploy` itself: tests/config/test_deploy_check.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.contrib.auth.hashers import make_password

import config.settings as configured  # the file's own values, not the tests' overrides

ROOT = Path(__file__).resolve().parents[2]


def test_it_hashes_passwords_with_argon2(settings):
    assert configured.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")
    settings.PASSWORD_HASHERS = configured.PASSWORD_HASHERS
    assert make_password("correct horse battery").startswith("argon2$")


def test_it_keeps_the_session_cookie_from_scripts_and_other_sites():
    assert configured.SESSION_COOKIE_HTTPONLY is True
    assert configured.SESSION_COOKIE_SAMESITE == "Lax"
    assert configured.SESSION_COOKIE_AGE == configured.SESSION_IDLE_DAYS * 24 * 3600
    assert configured.X_FRAME_OPTIONS == "DENY"
    assert configured.SECURE_CONTENT_TYPE_NOSNIFF is True


PRODUCTION = {
    "DEBUG": False,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
    "SECURE_SSL_REDIRECT": True,
    "SECURE_HSTS_SECONDS": 31_536_000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "ALLAUTH_TRUSTED_PROXY_COUNT": 1,
}


def test_it_uses_https_only_settings_in_production():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_HTTPS": "true",
        "DJANGO_SECRET_KEY": "p" * 60,
    }
    env.pop("DJANGO_DEBUG", None)
    names = ", ".join(f"{name!r}: settings.{name}" for name in PRODUCTION)
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{{names}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert json.loads(result.stdout) == PRODUCTION, result.stderr
