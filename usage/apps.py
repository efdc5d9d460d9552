from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage and limits"

    def ready(self) -> None:
        from usage import signals  # noqa: F401
