from django.apps import AppConfig


class AdminConsoleConfig(AppConfig):
    name = "tenant_apps.admin_console"
    label = "admin_console"
    verbose_name = "Institution admin console"
