from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "tenant_apps.billing"
    label = "billing"
    verbose_name = "Pricing and payments"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
