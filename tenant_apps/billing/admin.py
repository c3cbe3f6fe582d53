"""The pricing policy in the institution's Django admin (one row)."""

from django.contrib import admin

from tenant_apps.accounts.admin import tenant_admin_site

from .models import PricingPolicy


class PricingPolicyAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "min_price_minor",
        "max_price_minor",
        "payment_hold_minutes",
        "full_refund_hours",
    )

    def has_add_permission(self, request) -> bool:
        return not PricingPolicy.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


tenant_admin_site.register(PricingPolicy, PricingPolicyAdmin)
