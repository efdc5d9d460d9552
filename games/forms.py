from __future__ import annotations

from django import forms
from django.conf import settings

from accounts.models import User
from games.models import Game
from games.validation import GamePackageError, validate_game_package

# Paths under /games/ that are pages, not games.
RESERVED_SLUGS = frozenset({"publish"})


class ModelListField(forms.CharField):
    """A JSON list of model names, edited as a comma- or line-separated text."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value

    def to_python(self, value):
        text = super().to_python(value) or ""
        names = [name.strip() for name in text.replace("\n", ",").split(",")]
        return list(dict.fromkeys(name for name in names if name))


class GameForm(forms.ModelForm):
    """Settings of a game plus its zip. The zip is checked here, before any write."""

    package = forms.FileField(
        label="Game package (.zip)",
        required=False,
        help_text=(
            "A zip with index.html at its top (or inside one top folder). "
            f"Up to {settings.GAME_MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )
    allowed_models = ModelListField(
        required=False,
        help_text="Model names the game may ask for, separated by commas. Empty: any model.",
    )
    players = forms.ModelMultipleChoiceField(
        queryset=User.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Friends who may play",
        help_text="Used when visibility is 'Only chosen friends'.",
    )

    class Meta:
        model = Game
        fields = [
            "title",
            "slug",
            "description",
            "visibility",
            "players",
            "allowed_models",
            "default_model",
            "daily_token_limit_per_player",
            "system_prompt",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "system_prompt": forms.Textarea(attrs={"rows": 5}),
        }

    def __init__(self, *args, user: User | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        players = User.objects.filter(is_active=True).order_by("username")
        if user is not None:
            players = players.exclude(pk=user.pk)
        self.fields["players"].queryset = players
        self.fields["package"].required = self.instance.pk is None
        if self.instance.pk is not None:
            # A game's address is its identity: links and files hang off it.
            self.fields["slug"].disabled = True
        self.package = None

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if slug in RESERVED_SLUGS:
            raise forms.ValidationError(f"“{slug}” is a page of the site; pick another address.")
        return slug

    def clean_package(self):
        upload = self.cleaned_data.get("package")
        if not upload:
            return None
        try:
            self.package = validate_game_package(upload)
        except GamePackageError as exc:
            raise forms.ValidationError(str(exc), code="invalid_package") from exc
        return upload

    def clean(self):
        cleaned = super().clean()
        allowed = cleaned.get("allowed_models") or []
        default = cleaned.get("default_model")
        if default and allowed and default not in allowed:
            self.add_error("default_model", "The default model must be one of the allowed models.")
        return cleaned

    def game_fields(self) -> dict:
        fields = dict(self.cleaned_data)
        for name in ("slug", "players", "package"):
            fields.pop(name, None)
        return fields
