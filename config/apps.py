from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """The project's own configuration: system checks (config/checks.py)."""

    name = "config"
    verbose_name = "Configuration"

    def ready(self) -> None:
        from config import checks  # noqa: F401  (registers the checks)
