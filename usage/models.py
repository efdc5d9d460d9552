from __future__ import annotations

import fnmatch
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models


class UsageRecord(models.Model):
    """One request that reached a model backend, whatever became of it."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Cancelled"

    # No index of their own on `user` and `game`: the composite indexes below
    # start with them. Every settled request writes a record, and each index is
    # one more B-tree page written per insert.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="usage_records",
        db_index=False,
    )
    token = models.ForeignKey(
        "accounts.ApiToken",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="usage_records",
    )
    game = models.ForeignKey(
        "games.Game",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="usage_records",
        db_index=False,
    )
    backend = models.CharField(max_length=20)
    model = models.CharField(max_length=200)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    estimated = models.BooleanField(
        default=False, help_text="The upstream gave no counts; these are estimates."
    )
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    error_code = models.CharField(max_length=40, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    day = models.DateField(help_text="The usage day (in USAGE_TIMEZONE) the request started on.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "day"], name="usage_user_day"),
            models.Index(fields=["user", "-created_at"], name="usage_user_created"),
            models.Index(fields=["game", "user", "day"], name="usage_game_user_day"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.model} {self.total_tokens} ({self.outcome})"


class UserQuota(models.Model):
    """The counted usage a user's limits are checked against.

    Kept apart from the records so that a reset can clear a window while the
    records stay for history. The row is locked while a reservation is taken.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="quota"
    )
    total_used = models.PositiveBigIntegerField(default=0)
    day = models.DateField(null=True, blank=True)
    day_used = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"quota of {self.user_id}"


class GameQuota(models.Model):
    """A player's counted usage today in one game (for the game's per-player limit)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="game_quotas"
    )
    game = models.ForeignKey("games.Game", on_delete=models.CASCADE, related_name="player_quotas")
    day = models.DateField()
    day_used = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "game"], name="game_quota_user_game"),
        ]

    def __str__(self) -> str:
        return f"quota of {self.user_id} in game {self.game_id}"


class QuotaReservation(models.Model):
    """Tokens held for a request in flight. Expired ones belong to dead workers."""

    # Rows live only while a request is in flight (or until a dead worker's
    # expire), so the table stays small: one index serves the ledger, by user,
    # and every reservation is an insert and a delete that each other index
    # would make dearer.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="quota_reservations",
        db_index=False,
    )
    game = models.ForeignKey(
        "games.Game", null=True, blank=True, on_delete=models.CASCADE, db_index=False
    )
    tokens = models.PositiveBigIntegerField()
    day = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="reservation_user_expires")]

    def __str__(self) -> str:
        return f"{self.tokens} tokens for {self.user_id} until {self.expires_at:%H:%M:%S}"


class ModelPrice(models.Model):
    """USD per million tokens for a model name or a glob pattern (`claude-opus-4*`)."""

    pattern = models.CharField(
        max_length=200, unique=True, help_text="An exact model name, or a pattern with *."
    )
    display_name = models.CharField(max_length=200, blank=True)
    input_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    output_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    cache_write_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    cache_read_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    retired = models.BooleanField(
        default=False, help_text="A retired model is no longer offered to games."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pattern"]

    def __str__(self) -> str:
        return self.pattern

    @property
    def is_pattern(self) -> bool:
        return any(ch in self.pattern for ch in "*?[")

    def matches(self, model: str) -> bool:
        return (
            fnmatch.fnmatchcase(model, self.pattern) if self.is_pattern else model == self.pattern
        )
