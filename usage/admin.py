from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Sum
from django.utils import timezone

from usage.clock import usage_day
from usage.models import GameQuota, ModelPrice, QuotaReservation, UsageRecord, UserQuota
from usage.services import release_expired_reservations


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only the quota ledger writes: editing them by hand would break the
    invariant that counters equal the sum of the records."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user",
        "model",
        "backend",
        "game",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "estimated",
        "cost_usd",
        "outcome",
        "error_code",
        "latency_ms",
        "ttft_ms",
    )
    list_filter = (
        "outcome",
        "backend",
        "estimated",
        "day",
        ("user", admin.RelatedOnlyFieldListFilter),
        "model",
    )
    list_select_related = ("user", "game")
    search_fields = ("user__username", "model", "error_code")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)

    def has_delete_permission(self, request, obj=None):
        # Records are history; deleting them is for a superuser cleaning up
        # (and `prune_usage` for old days). Counters are not changed either way.
        return request.user.is_superuser


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = (
        "pattern",
        "display_name",
        "input_per_mtok",
        "output_per_mtok",
        "cache_write_per_mtok",
        "cache_read_per_mtok",
        "retired",
        "updated_at",
    )
    list_editable = (
        "input_per_mtok",
        "output_per_mtok",
        "cache_write_per_mtok",
        "cache_read_per_mtok",
        "retired",
    )
    list_filter = ("retired",)
    search_fields = ("pattern", "display_name")
    fieldsets = (
        (
            None,
            {
                "fields": ("pattern", "display_name", "retired"),
                "description": (
                    "USD per million tokens. A model is priced by its exact row, else by "
                    "the longest pattern (with *) that matches it. A retired model is no "
                    "longer offered."
                ),
            },
        ),
        (
            "Prices (USD per million tokens)",
            {
                "fields": (
                    "input_per_mtok",
                    "output_per_mtok",
                    "cache_write_per_mtok",
                    "cache_read_per_mtok",
                )
            },
        ),
    )


class ExpiredFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "In flight"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "live":
            return queryset.filter(expires_at__gt=now)
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        return queryset


@admin.register(QuotaReservation)
class QuotaReservationAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "game", "tokens", "day", "created_at", "expires_at", "expired")
    list_filter = (ExpiredFilter, "day")
    list_select_related = ("user", "game")
    search_fields = ("user__username",)
    actions = ["release_expired"]

    @admin.display(boolean=True)
    def expired(self, obj):
        return obj.expires_at <= timezone.now()

    @admin.action(description="Release every expired reservation (of all users)")
    def release_expired(self, request, queryset):
        released = release_expired_reservations()
        self.message_user(request, f"Released {released} expired reservation(s).", messages.SUCCESS)


@admin.register(UserQuota)
class UserQuotaAdmin(ReadOnlyAdmin):
    list_display = ("user", "total_used", "day", "day_used", "updated_at")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    ordering = ("-total_used",)


@admin.register(GameQuota)
class GameQuotaAdmin(ReadOnlyAdmin):
    list_display = ("user", "game", "day", "day_used")
    list_select_related = ("user", "game")
    search_fields = ("user__username", "game__title", "game__slug")


class UserUsageAdminMixin:
    """Usage columns for the user admin's list: tokens today and in total
    (the counters the limits are checked against) and estimated cost.

    Put it first among the user admin's bases; it appends its columns to
    whatever `list_display` says.
    """

    usage_columns = ("usage_today", "usage_total", "usage_cost")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("quota")
            .annotate(usage_cost_total=Sum("usage_records__cost_usd"))
        )

    def get_list_display(self, request):
        return (*super().get_list_display(request), *self.usage_columns)

    @admin.display(description="Tokens today")
    def usage_today(self, obj):
        quota = getattr(obj, "quota", None)
        return quota.day_used if quota and quota.day == usage_day() else 0

    @admin.display(description="Tokens total", ordering="quota__total_used")
    def usage_total(self, obj):
        quota = getattr(obj, "quota", None)
        return quota.total_used if quota else 0

    @admin.display(description="Cost (USD)", ordering="usage_cost_total")
    def usage_cost(self, obj):
        return f"{obj.usage_cost_total or 0:.4f}"
