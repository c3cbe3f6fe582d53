from django.apps import AppConfig


class PlatformBillingConfig(AppConfig):
    name = "shared.platform_billing"
    label = "platform_billing"
    verbose_name = "Platform billing"
