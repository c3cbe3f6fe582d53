from django.apps import AppConfig


class PlatformBillingConfig(AppConfig):
    name = "shared.platform_billing"
    label = "platform_billing"
    verbose_name = "Platform billing"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system check)
