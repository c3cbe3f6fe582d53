from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Institutions"

    def ready(self) -> None:
        from . import signals  # noqa: F401
