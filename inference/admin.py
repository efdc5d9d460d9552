from django.contrib import admin

from inference.backends import enabled_backends
from inference.models import InferenceSettings, ModelAlias


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "model", "description", "backend_configured"]
    list_filter = ["backend"]
    search_fields = ["name", "model", "description"]

    @admin.display(boolean=True, description="Backend configured")
    def backend_configured(self, alias: ModelAlias) -> bool:
        return alias.backend in enabled_backends()


@admin.register(InferenceSettings)
class InferenceSettingsAdmin(admin.ModelAdmin):
    """The run-time switch of the default backend: one row, never deleted."""

    list_display = ["__str__", "default_backend", "default_model", "updated_at"]
    fields = ["default_backend", "default_model", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request) -> bool:
        return not InferenceSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
