"""Billing pages of an institution's site (namespace "billing", under /billing/)."""

from . import views, views_manage

app_name = "billing"

urlpatterns = [*views.urlpatterns, *views_manage.urlpatterns]
