"""Plans and subscriptions in the platform staff's admin (public schema)."""

from django.contrib import admin

from .models import Plan, PlatformWebhookEvent, Subscription, SubscriptionEvent


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "code",
        "monthly_price_minor",
        "yearly_price_minor",
        "currency",
        "is_public",
        "position",
    )
    list_editable = ("is_public", "position")
    fieldsets = (
        (None, {"fields": ("code", "name", "description", "is_public", "position")}),
        (
            "Prices (minor units)",
            {"fields": ("currency", "monthly_price_minor", "yearly_price_minor", "usage_unit_minor")},
        ),
        (
            "Limits (empty = unlimited)",
            {
                "fields": (
                    "max_active_mentors",
                    "max_active_learners",
                    "max_sessions_per_month",
                    "max_storage_mb",
                )
            },
        ),
        ("Features", {"fields": ("custom_domain", "custom_css", "sms_reminders", "remove_branding")}),
        (
            "Stripe",
            {"fields": ("stripe_monthly_price_id", "stripe_yearly_price_id", "stripe_usage_price_id")},
        ),
    )


class SubscriptionEventInline(admin.TabularInline):
    model = SubscriptionEvent
    extra = 0
    can_delete = False
    readonly_fields = ("at", "kind", "from_status", "to_status", "plan_code", "note", "stripe_event_id")


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("institution", "plan", "status", "interval", "trial_ends_at", "current_period_end")
    list_filter = ("status", "plan")
    search_fields = ("institution__name", "institution__slug", "stripe_customer_id")
    readonly_fields = ("stripe_customer_id", "stripe_subscription_id", "status_event_at", "created_at")
    inlines = [SubscriptionEventInline]


@admin.register(PlatformWebhookEvent)
class PlatformWebhookEventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "type", "stripe_created_at", "processed_at", "error")
    readonly_fields = (
        "event_id",
        "type",
        "payload",
        "stripe_created_at",
        "received_at",
        "processed_at",
        "error",
    )
