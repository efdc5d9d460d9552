from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from accounts.models import User
from accounts.selectors import game_list_for_token_choice


class InviteAcceptForm(UserCreationForm):
    """Username and password for a new account; passwords pass the validators."""

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username",)


class InviteCreateForm(forms.Form):
    note = forms.CharField(
        max_length=200,
        required=False,
        help_text="Only you see this, e.g. who the invite is for.",
    )


class StaffInviteCreateForm(InviteCreateForm):
    max_uses = forms.IntegerField(min_value=1, max_value=1000, initial=1, label="Uses")
    expires_days = forms.IntegerField(
        min_value=1, max_value=365, required=False, label="Expires after (days)"
    )


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'my laptop'.")
    game = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="Any game",
        help_text="A token for one game works only for that game.",
    )
    expires_days = forms.IntegerField(
        min_value=1,
        max_value=3650,
        required=False,
        label="Expires after (days)",
        help_text="Empty: the token does not expire unless the site sets a lifetime.",
    )

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["game"].queryset = game_list_for_token_choice(user=user)
