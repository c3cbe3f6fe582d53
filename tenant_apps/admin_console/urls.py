"""The institution admins' console, under /manage/ (namespace "manage")."""

from importlib import import_module

app_name = "manage"


def _patterns(module: str) -> list:
    try:
        return import_module(f"tenant_apps.admin_console.{module}").urlpatterns
    except ModuleNotFoundError as error:
        if error.name != f"tenant_apps.admin_console.{module}":
            raise
        return []


urlpatterns = [
    *_patterns("views_settings"),
    *_patterns("views_domains"),
    *_patterns("views_branding"),
    *_patterns("views_members"),
    *_patterns("views_analytics"),
    *_patterns("views_audit"),
    *_patterns("views_export"),
]
