from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}$", "Lower-case letters, digits and hyphens, up to 63 characters."
)


class Game(models.Model):
    """An HTML5 game: a folder of static files with an index.html."""

    class Visibility(models.TextChoices):
        EVERYONE = "everyone", "All signed-in users"
        FRIENDS = "friends", "Only chosen friends"

    slug = models.SlugField(max_length=63, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="games_owned",
    )
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.EVERYONE
    )
    players = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="games_shared",
        help_text="Who may play when visibility is 'Only chosen friends'.",
    )
    allowed_models = models.JSONField(
        default=list,
        blank=True,
        help_text="Model names or aliases the game may ask for. Empty: any model.",
    )
    default_model = models.CharField(max_length=200, blank=True)
    daily_token_limit_per_player = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Tokens per player per day in this game. Empty: none."
    )
    system_prompt = models.TextField(
        blank=True, help_text="Sent before the game's own system prompt; the game cannot drop it."
    )
    version = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        permissions = [("publish_game", "Can publish games")]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("games:play", kwargs={"slug": self.slug})


class Conversation(models.Model):
    """A server-side chat history: one player's, or a multiplayer room's.

    The owner and the invited `players` may read it and add turns; anyone else
    is told it does not exist.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    game = models.ForeignKey(
        Game, null=True, blank=True, on_delete=models.CASCADE, related_name="conversations"
    )
    system_prompt = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    history_limit = models.PositiveIntegerField(
        default=20, help_text="How many of the latest messages are sent with each turn."
    )
    token_cap = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Tokens this conversation may use in all. Empty: none."
    )
    tokens_used = models.BigIntegerField(default=0)
    players = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="conversations_joined",
        help_text="Invited players of a multiplayer room.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"conversation {self.id}"


class ConversationMessage(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversation_messages",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"
