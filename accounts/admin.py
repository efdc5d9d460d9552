from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.html import format_html

from accounts.models import ApiToken, Invite, User
from accounts.selectors import api_token_status, invite_status
from accounts.services import api_token_revoke, user_deactivate
from usage.admin import UserUsageAdminMixin


@admin.register(User)
class UserAdmin(UserUsageAdminMixin, DjangoUserAdmin):
    list_display = (
        "username",
        "email",
        "is_active",
        "is_staff",
        "token_limit",
        "daily_token_limit",
        "rate_limit_per_minute",
        "invites_remaining",
        "last_login",
        "date_joined",
    )
    list_editable = (
        "is_active",
        "token_limit",
        "daily_token_limit",
        "rate_limit_per_minute",
        "invites_remaining",
    )
    list_filter = ("is_active", "is_staff", "is_superuser", "date_joined", "last_login")
    search_fields = ("username", "email", "first_name", "last_name")
    raw_id_fields = ("invited_by",)
    actions = ["deactivate"]
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        (
            "Limits and invites",
            {
                "description": "Empty limits fall back to the site's defaults.",
                "fields": (
                    "token_limit",
                    "daily_token_limit",
                    "rate_limit_per_minute",
                    "invites_remaining",
                    "invited_by",
                ),
            },
        ),
    )

    @admin.action(description="Deactivate the selected users and end their sessions")
    def deactivate(self, request, queryset):
        users = list(queryset.filter(is_active=True))
        for user in users:
            user_deactivate(user=user)
        self.message_user(request, f"Deactivated {len(users)} user(s).", messages.SUCCESS)


class InviteStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("valid", "Valid"), ("expired", "Expired"), ("used_up", "Used up")]

    def queryset(self, request, queryset):
        now = timezone.now()
        used_up = Q(uses__gte=F("max_uses"))
        if self.value() == "valid":
            return queryset.filter(expires_at__gt=now).exclude(used_up)
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now).exclude(used_up)
        if self.value() == "used_up":
            return queryset.filter(used_up)
        return queryset


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = (
        "short_code",
        "note",
        "created_by",
        "uses",
        "max_uses",
        "accounts_created",
        "created_at",
        "expires_at",
        "status",
    )
    list_filter = (InviteStatusFilter, "created_at", "expires_at")
    search_fields = ("code", "note", "created_by__username")
    fields = ("link", "note", "created_by", "max_uses", "uses", "expires_at", "created_at")
    readonly_fields = ("link", "uses", "created_at")
    raw_id_fields = ("created_by",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_accounts=Count("accounts"))

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description="Code", ordering="code")
    def short_code(self, obj: Invite) -> str:
        return f"{obj.code[:8]}…"

    @admin.display(description="Accounts created", ordering="_accounts")
    def accounts_created(self, obj: Invite) -> int:
        return getattr(obj, "_accounts", None) or obj.accounts.count()

    @admin.display(description="Status")
    def status(self, obj: Invite) -> str:
        return invite_status(obj)

    @admin.display(description="Sign-up link")
    def link(self, obj: Invite) -> str:
        if obj.pk is None:
            return "Shown once the invite is saved."
        url = settings.SITE_URL + obj.get_absolute_url()
        return format_html('<a href="{}">{}</a>', obj.get_absolute_url(), url)


class ApiTokenStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.usable()
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created by their owners (the secret is shown to them once);
    the admin sees and revokes them, never their secret or its hash."""

    list_display = (
        "name",
        "owner",
        "prefix",
        "kind",
        "game",
        "created_at",
        "last_used_at",
        "expires_at",
        "status",
    )
    list_filter = (ApiTokenStatusFilter, "kind", "game", "created_at")
    search_fields = ("name", "prefix", "owner__username")
    list_select_related = ("owner", "game")
    fields = (
        "name",
        "owner",
        "kind",
        "game",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = ("owner", "kind", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Status")
    def status(self, obj: ApiToken) -> str:
        return api_token_status(obj)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token, by=request.user)
            count += 1
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
