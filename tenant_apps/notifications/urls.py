"""Notification pages and Twilio's callbacks on an institution's site (namespace "notifications")."""

from importlib import import_module

app_name = "notifications"


def _patterns(module: str) -> list:
    try:
        return import_module(f"tenant_apps.notifications.{module}").urlpatterns
    except ModuleNotFoundError:
        return []


urlpatterns = [*_patterns("views"), *_patterns("views_twilio"), *_patterns("views_sms_settings")]
