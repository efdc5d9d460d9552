"""Django's deploy checks for its security, CSRF and clickjacking middleware,
for the subclasses in config/middleware.py.

Django recognizes those middleware only by their own dotted paths in
MIDDLEWARE: with subclasses there it would report them missing
(security.W001-W003, silenced in settings) and skip every check that depends on
them. These make the same checks, recognizing subclasses, and report Django's
own messages.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register
from django.core.checks.security import base, csrf
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.module_loading import import_string

MISSING_SECURITY = Warning(base.W001.msg, id="config.W001")
MISSING_XFRAME = Warning(base.W002.msg, id="config.W002")
MISSING_CSRF = Warning(csrf.W003.msg, id="config.W003")


def _installed(middleware: type) -> bool:
    classes = [import_string(path) for path in settings.MIDDLEWARE]
    return any(isinstance(cls, type) and issubclass(cls, middleware) for cls in classes)


DJANGO_SECURITY = "django.middleware.security.SecurityMiddleware"
DJANGO_XFRAME = "django.middleware.clickjacking.XFrameOptionsMiddleware"
DJANGO_CSRF = "django.middleware.csrf.CsrfViewMiddleware"


@register(Tags.security, deploy=True)
def check_security_middleware(app_configs, **kwargs) -> list[CheckMessage]:
    if not _installed(SecurityMiddleware):
        return [MISSING_SECURITY]
    if DJANGO_SECURITY in settings.MIDDLEWARE:
        return []  # Django's own class: Django checks it
    found: list[CheckMessage] = []
    if not settings.SECURE_HSTS_SECONDS:
        found.append(base.W004)
    else:
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS is not True:
            found.append(base.W005)
        if settings.SECURE_HSTS_PRELOAD is not True:
            found.append(base.W021)
    if settings.SECURE_CONTENT_TYPE_NOSNIFF is not True:
        found.append(base.W006)
    if settings.SECURE_SSL_REDIRECT is not True:
        found.append(base.W008)
    policy = settings.SECURE_REFERRER_POLICY
    if policy is None:
        found.append(base.W022)
    else:
        values = {v.strip() for v in policy.split(",")} if isinstance(policy, str) else set(policy)
        if not values <= base.REFERRER_POLICY_VALUES:
            found.append(base.E023)
    opener = settings.SECURE_CROSS_ORIGIN_OPENER_POLICY
    if opener is not None and opener not in base.CROSS_ORIGIN_OPENER_POLICY_VALUES:
        found.append(base.E024)
    return found


@register(Tags.security, deploy=True)
def check_xframe_options_middleware(app_configs, **kwargs) -> list[CheckMessage]:
    if not _installed(XFrameOptionsMiddleware):
        return [MISSING_XFRAME]
    if DJANGO_XFRAME in settings.MIDDLEWARE or settings.X_FRAME_OPTIONS == "DENY":
        return []
    return [base.W019]


@register(Tags.security, deploy=True)
def check_csrf_middleware(app_configs, **kwargs) -> list[CheckMessage]:
    if not _installed(CsrfViewMiddleware):
        return [MISSING_CSRF]
    if DJANGO_CSRF in settings.MIDDLEWARE or settings.CSRF_USE_SESSIONS:
        return []
    return [] if settings.CSRF_COOKIE_SECURE is True else [csrf.W016]
