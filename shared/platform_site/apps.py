from django.apps import AppConfig


class PlatformSiteConfig(AppConfig):
    name = "shared.platform_site"
    label = "platform_site"
    verbose_name = "Platform site"
