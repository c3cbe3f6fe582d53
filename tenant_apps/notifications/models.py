"""Notifications of an institution's people: one record per recipient and event, its deliveries
on each channel (the delivery log), preferences, and the institution's SMS settings."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from shared.core.fields import EncryptedTextField


class Event(models.TextChoices):
    BOOKING_REQUESTED = "booking_requested", "Session requested"
    BOOKING_CONFIRMED = "booking_confirmed", "Session confirmed"
    BOOKING_DECLINED = "booking_declined", "Session declined"
    BOOKING_CANCELLED = "booking_cancelled", "Session cancelled"
    BOOKING_RESCHEDULED = "booking_rescheduled", "Session moved"
    PAYMENT_RECEIVED = "payment_received", "Payment received"
    PAYMENT_REFUNDED = "payment_refunded", "Payment refunded"
    REMINDER_24H = "reminder_24h", "Reminder a day before"
    REMINDER_1H = "reminder_1h", "Reminder an hour before"
    SESSION_STARTING = "session_starting", "Session starting now"
    REVIEW_REQUESTED = "review_requested", "Review requested"
    MENTOR_APPROVED = "mentor_approved", "Mentor application approved"
    PAYOUT_SENT = "payout_sent", "Payout sent"


class Channel(models.TextChoices):
    IN_APP = "in_app", "In the app"
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


# What each event goes out on when neither the person nor the institution chose otherwise.
BUILT_IN_DEFAULTS: dict[str, frozenset[str]] = {
    event: frozenset({Channel.IN_APP, Channel.EMAIL}) for event in Event.values
} | {
    Event.REMINDER_1H: frozenset({Channel.IN_APP, Channel.EMAIL, Channel.SMS}),
    Event.SESSION_STARTING: frozenset({Channel.IN_APP, Channel.SMS}),
    Event.REVIEW_REQUESTED: frozenset({Channel.IN_APP}),
    # Billing emails a receipt for each payment and refund already.
    Event.PAYMENT_RECEIVED: frozenset({Channel.IN_APP}),
    Event.PAYMENT_REFUNDED: frozenset({Channel.IN_APP}),
}


class Notification(models.Model):
    """One event for one person: what the notification centre lists."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=30, choices=Event.choices)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=300, blank=True, help_text="A path on the institution's site.")
    data = models.JSONField(default=dict, blank=True)
    # Set for what must happen once (a reminder of one booking's time): a second try is refused.
    dedupe_key = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["recipient", "read_at", "-created_at"]),
            # A person's list, newest first: one page is read from the index, not sorted from all.
            models.Index(fields=["recipient", "-created_at", "-id"], name="notification_recipient_recent"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["recipient", "dedupe_key"], condition=~Q(dedupe_key=""), name="notification_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} for {self.recipient_id}"


class Delivery(models.Model):
    """One notification on one channel: the delivery log (and the exactly-once record)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Not sent"

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    to = models.CharField(max_length=254, blank=True, help_text="The address or number it went to.")
    provider_id = models.CharField(max_length=120, blank=True, db_index=True)
    provider_status = models.CharField(max_length=30, blank=True)
    error = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["notification", "channel"], name="delivery_once_per_channel")
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.status}"


class Preference(models.Model):
    """A person's choice of channels for one event (absent: the institution's default)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    event = models.CharField(max_length=30, choices=Event.choices)
    in_app = models.BooleanField(default=True)
    email = models.BooleanField(default=True)
    sms = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "event"], name="preference_once_per_event")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.event}"


class InstitutionDefault(models.Model):
    """The institution's default channels for one event (absent: the built-in default)."""

    event = models.CharField(max_length=30, choices=Event.choices, unique=True)
    in_app = models.BooleanField(default=True)
    email = models.BooleanField(default=True)
    sms = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.event


class SmsSettings(models.Model):
    """The institution's own Twilio account, or the platform's (one row)."""

    use_own_account = models.BooleanField(default=False)
    account_sid = models.CharField(max_length=64, blank=True)
    auth_token = EncryptedTextField(blank=True)
    from_number = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +14155550100.")
    messaging_service_sid = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "SMS settings"

    def __str__(self) -> str:
        return "SMS settings"

    def __repr__(self) -> str:
        return f"<SmsSettings own={self.use_own_account} sid={self.account_sid!r}>"
