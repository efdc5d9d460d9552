from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "vgp_"


def effective_limit(value: int | None, default: int) -> int | None:
    """A user's limit: their own when set, else the configured default; 0 in
    either place means unlimited (None)."""
    limit = value if value is not None else default
    return limit or None


class User(AbstractUser):
    """A player. Limits left empty fall back to the configured defaults."""

    token_limit = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Total tokens this user may use. Empty: the configured default.",
    )
    daily_token_limit = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Tokens per day (UTC). Empty: the configured default.",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Inference requests per minute. Empty: the configured default.",
    )
    invites_remaining = models.PositiveIntegerField(
        default=0, help_text="How many friends this user may still invite."
    )
    invited_by = models.ForeignKey(
        "accounts.Invite",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="accounts",
        help_text="The invite this account was created from.",
    )

    class Meta:
        db_table = "accounts_user"

    @property
    def effective_token_limit(self) -> int | None:
        return effective_limit(self.token_limit, settings.DEFAULT_TOKEN_LIMIT)

    @property
    def effective_daily_token_limit(self) -> int | None:
        return effective_limit(self.daily_token_limit, settings.DEFAULT_DAILY_TOKEN_LIMIT)

    @property
    def effective_rate_limit_per_minute(self) -> int | None:
        rate = (
            self.rate_limit_per_minute
            if self.rate_limit_per_minute is not None
            else settings.RATE_LIMIT_PER_MINUTE
        )
        return rate or None


def _invite_code() -> str:
    return secrets.token_urlsafe(16)


def _default_invite_expiry():
    return timezone.now() + timedelta(days=settings.INVITE_DEFAULT_EXPIRES_DAYS)


class Invite(models.Model):
    """A sign-up link. Valid while unexpired and not used `max_uses` times."""

    code = models.CharField(max_length=64, unique=True, default=_invite_code, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invites_created",
    )
    note = models.CharField(max_length=200, blank=True)
    max_uses = models.PositiveIntegerField(default=1)
    uses = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=_default_invite_expiry)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.code[:8]}… ({self.uses}/{self.max_uses})"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("accounts:invite_accept", kwargs={"code": self.code})

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_used_up(self) -> bool:
        return self.uses >= self.max_uses

    @property
    def is_valid(self) -> bool:
        return not self.is_expired and not self.is_used_up


def hash_token(secret: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is as safe as a slow
    # one here and keeps authentication off the request's critical path.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A bearer credential. Only a hash of the secret is stored."""

    class Kind(models.TextChoices):
        PERSONAL = "personal", "Personal"
        GAME_SESSION = "game_session", "Game session"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PERSONAL)
    game = models.ForeignKey(
        "games.Game",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="When set, the token works only for this game.",
    )
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate_secret() -> tuple[str, str]:
        """A new secret and its visible prefix."""
        body = secrets.token_urlsafe(32)
        secret = f"{TOKEN_PREFIX}{body}"
        return secret, secret[: len(TOKEN_PREFIX) + 6]

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return not self.is_revoked and not self.is_expired
