from __future__ import annotations

from django.db import models

BACKEND_CHOICES = [
    ("anthropic", "Anthropic"),
    ("ollama", "Ollama"),
    ("openai", "OpenAI-compatible"),
    ("demo", "Demo"),
]


class ModelAlias(models.Model):
    """A friendly model name (`smart`, `fast`) that stands for a backend's model."""

    name = models.CharField(max_length=100, unique=True)
    backend = models.CharField(max_length=20, choices=BACKEND_CHOICES)
    model = models.CharField(max_length=200)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return f"{self.name} → {self.backend}:{self.model}"


class InferenceSettings(models.Model):
    """Run-time switches an admin can flip without a restart (a single row)."""

    default_backend = models.CharField(
        max_length=20,
        choices=BACKEND_CHOICES,
        blank=True,
        help_text="Overrides INFERENCE_DEFAULT_BACKEND. Empty: use the configured default.",
    )
    default_model = models.CharField(
        max_length=200, blank=True, help_text="Empty: the default backend's own default model."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "inference settings"
        verbose_name_plural = "inference settings"

    def __str__(self) -> str:
        return "Inference settings"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)
