"""What the platform charges institutions: plans, each institution's subscription, its history,
the platform's Stripe webhook events and monthly usage. Public schema only."""

from django.db import models
from django.db.models import Q


class Feature(models.TextChoices):
    CUSTOM_DOMAIN = "custom_domain", "Custom domain"
    CUSTOM_CSS = "custom_css", "Custom CSS"
    SMS_REMINDERS = "sms_reminders", "SMS reminders"
    REMOVE_BRANDING = "remove_branding", "No “Powered by PeerLearn” footer"


class Limit(models.TextChoices):
    ACTIVE_MENTORS = "active_mentors", "Active mentors"
    ACTIVE_LEARNERS = "active_learners", "Active learners"
    SESSIONS_PER_MONTH = "sessions_per_month", "Sessions per month"
    STORAGE_MB = "storage_mb", "Storage (MB)"


class Plan(models.Model):
    """Edited by platform staff. A limit left empty is unlimited."""

    code = models.SlugField(max_length=30, unique=True)
    name = models.CharField(max_length=60)
    description = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    monthly_price_minor = models.PositiveIntegerField()
    yearly_price_minor = models.PositiveIntegerField()
    # Billing by usage: this much per active learner per month on top of the price (0 = not billed).
    usage_unit_minor = models.PositiveIntegerField(default=0)
    max_active_mentors = models.PositiveIntegerField(null=True, blank=True)
    max_active_learners = models.PositiveIntegerField(null=True, blank=True)
    max_sessions_per_month = models.PositiveIntegerField(null=True, blank=True)
    max_storage_mb = models.PositiveIntegerField(null=True, blank=True)
    custom_domain = models.BooleanField(default=False)
    custom_css = models.BooleanField(default=False)
    sms_reminders = models.BooleanField(default=False)
    remove_branding = models.BooleanField(default=False)
    stripe_monthly_price_id = models.CharField(max_length=100, blank=True)
    stripe_yearly_price_id = models.CharField(max_length=100, blank=True)
    stripe_usage_price_id = models.CharField(max_length=100, blank=True)
    is_public = models.BooleanField(default=True, help_text="Offered to institutions.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "monthly_price_minor"]

    def __str__(self) -> str:
        return self.name

    def limit(self, limit: str) -> int | None:
        return getattr(self, f"max_{limit}")

    def has(self, feature: str) -> bool:
        return bool(getattr(self, feature))


class Subscription(models.Model):
    """One per institution: its plan and where it stands with paying for it."""

    class Status(models.TextChoices):
        TRIALING = "trialing", "Trial"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Payment overdue"
        SUSPENDED = "suspended", "Suspended"
        CANCELLED = "cancelled", "Cancelled"

    class Interval(models.TextChoices):
        MONTH = "month", "Monthly"
        YEAR = "year", "Yearly"

    institution = models.OneToOneField(
        "tenants.Institution", on_delete=models.CASCADE, related_name="subscription"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    interval = models.CharField(max_length=5, choices=Interval.choices, default=Interval.MONTH)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRIALING, db_index=True)
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    past_due_since = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    delete_after = models.DateTimeField(
        null=True, blank=True, help_text="When a cancelled institution's data goes."
    )
    stripe_customer_id = models.CharField(max_length=100, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=100, blank=True, db_index=True)
    # The Stripe time of the last event that set the status: an older event never overrides it.
    status_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "trial_ends_at"]),
            models.Index(fields=["status", "past_due_since"]),
            models.Index(fields=["status", "delete_after"]),
        ]

    def __str__(self) -> str:
        return f"{self.institution} on {self.plan} ({self.status})"

    @property
    def takes_bookings(self) -> bool:
        return self.status in (self.Status.TRIALING, self.Status.ACTIVE, self.Status.PAST_DUE)

    @property
    def monthly_revenue_minor(self) -> int:
        """This subscription's MRR (a yearly price counts a twelfth a month); 0 unless paying."""
        if self.status not in (self.Status.ACTIVE, self.Status.PAST_DUE):
            return 0
        if self.interval == self.Interval.YEAR:
            return self.plan.yearly_price_minor // 12
        return self.plan.monthly_price_minor


class SubscriptionEvent(models.Model):
    """The history of a subscription, for the platform console."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40)
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10, blank=True)
    plan_code = models.CharField(max_length=30, blank=True)
    note = models.CharField(max_length=300, blank=True)
    stripe_event_id = models.CharField(max_length=100, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.from_status} → {self.to_status}"


class PlatformWebhookEvent(models.Model):
    """Every verified event of the platform's Stripe account, stored once by its id."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=80)
    payload = models.JSONField()
    stripe_created_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class UsageSnapshot(models.Model):
    """An institution's usage in one month (counted in its schema, kept here for the console)."""

    institution = models.ForeignKey("tenants.Institution", on_delete=models.CASCADE, related_name="usage")
    month = models.DateField(help_text="The first day of the month.")
    active_mentors = models.PositiveIntegerField(default=0)
    active_learners = models.PositiveIntegerField(default=0)
    sessions = models.PositiveIntegerField(default=0)
    storage_mb = models.PositiveIntegerField(default=0)
    reported_value = models.PositiveIntegerField(null=True, blank=True, help_text="Sent to Stripe as usage.")
    counted_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-month"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "month"], name="usage_once_a_month"),
            models.CheckConstraint(condition=Q(month__day=1), name="usage_month_starts_on_day_one"),
        ]

    def __str__(self) -> str:
        return f"{self.institution} {self.month:%Y-%m}"
