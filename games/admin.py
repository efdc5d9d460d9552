from __future__ import annotations

from django.contrib import admin

from games import services
from games.forms import GameForm
from games.models import Conversation, ConversationMessage, Game


class GameAdminForm(GameForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The admin widget for many players scales better than checkboxes.
        self.fields["players"].widget = admin.widgets.FilteredSelectMultiple("players", False)


@admin.register(Game)
class GameAdmin(admin.ModelAdmin):
    form = GameAdminForm
    list_display = [
        "title",
        "slug",
        "owner",
        "visibility",
        "default_model",
        "version",
        "updated_at",
    ]
    list_filter = ["visibility"]
    search_fields = ["title", "slug", "description"]
    readonly_fields = ["version", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["title", "slug", "owner", "description", "package", "version"]}),
        ("Who may play", {"fields": ["visibility", "players"]}),
        (
            "Models and limits",
            {
                "fields": [
                    "allowed_models",
                    "default_model",
                    "daily_token_limit_per_player",
                    "system_prompt",
                ]
            },
        ),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    def save_model(self, request, obj, form, change):
        # The row goes through the same service as the publish page, so the
        # files are validated, swapped in atomically and the version bumped.
        if not change and obj.owner_id is None:
            obj.owner = request.user
        obj.save()
        if form.package is not None:
            services.game_package_install(game=obj, package=form.package)

    def delete_model(self, request, obj):
        services.game_delete(game=obj)

    def delete_queryset(self, request, queryset):
        for game in queryset:
            services.game_delete(game=game)


class ConversationMessageInline(admin.TabularInline):
    model = ConversationMessage
    extra = 0
    fields = ["role", "author", "content", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "game", "model", "tokens_used", "token_cap", "updated_at"]
    list_filter = ["game"]
    search_fields = ["id", "owner__username"]
    raw_id_fields = ["owner"]
    filter_horizontal = ["players"]
    readonly_fields = ["tokens_used", "created_at", "updated_at"]
    inlines = [ConversationMessageInline]
