"""Notification pages and Twilio's callbacks on an institution's site (namespace "notifications")."""

from . import views, views_sms_settings, views_twilio

app_name = "notifications"

urlpatterns = [*views.urlpatterns, *views_twilio.urlpatterns, *views_sms_settings.urlpatterns]
