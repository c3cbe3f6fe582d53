"""Learners' payments, refunds, mentors' earnings and payouts, the ledger, the pricing policy.

Everything here lives in the institution's schema. Amounts are integers in minor units with an
ISO currency. Statuses change only in services.py; every movement of money is a balanced
LedgerTransaction (ledger.py), enforced again by a deferred constraint trigger in Postgres.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connection, models
from django.db.models import Q

from shared.core.fields import EncryptedTextField
from tenants.countries import CURRENCY_CHOICES


class Gateways(models.TextChoices):
    NONE = "none", "No online payments"
    STRIPE = "stripe", "Stripe"
    RAZORPAY = "razorpay", "Razorpay"
    SANDBOX = "sandbox", "Sandbox (development only)"


class PricingPolicy(models.Model):
    """Set by the institution's admins; read by booking (prices, holds) and billing (everything)."""

    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, blank=True)
    gateway = models.CharField(
        max_length=10,
        choices=Gateways.choices,
        default=Gateways.NONE,
        help_text="How learners pay for sessions. With none, only free sessions can be booked.",
    )
    commission_bps = models.PositiveIntegerField(
        default=1000,
        validators=[MaxValueValidator(10_000)],
        help_text="The institution's share of each session's price, in basis points (1000 = 10%).",
    )
    min_price_minor = models.PositiveIntegerField(
        default=0, help_text="Lowest price a mentor may ask per session, in minor units (0 = free allowed)."
    )
    max_price_minor = models.PositiveIntegerField(
        default=50_000, help_text="Highest price a mentor may ask per session, in minor units."
    )
    free_sessions_per_learner = models.PositiveSmallIntegerField(
        default=0, help_text="Paid sessions each learner gets free of charge (the institution sponsors them)."
    )
    payment_hold_minutes = models.PositiveSmallIntegerField(
        default=15,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text="How long a paid booking holds its slot while the learner pays.",
    )
    full_refund_hours = models.PositiveSmallIntegerField(
        default=24, help_text="Cancelling at least this many hours before the start refunds in full."
    )
    late_refund_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="Refund (percent) when cancelling later than that; the rest goes to the mentor.",
    )
    no_show_refund_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="Refund (percent) when the learner does not come; the rest goes to the mentor. "
        "A mentor who does not come always refunds the learner in full.",
    )

    class Meta:
        verbose_name_plural = "pricing policy"

    def __str__(self) -> str:
        return "Pricing policy"

    def save(self, *args, **kwargs) -> None:
        if not self.currency:
            self.currency = getattr(connection.tenant, "currency", "") or "USD"
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if self.min_price_minor > self.max_price_minor:
            raise ValidationError({"max_price_minor": "The highest price must not be below the lowest."})
        if self.gateway == Gateways.SANDBOX and not settings.BILLING_SANDBOX_ENABLED:
            raise ValidationError({"gateway": "The sandbox gateway is only available in development."})


def pricing_policy() -> PricingPolicy:
    """The current institution's policy (created with defaults on first use)."""
    policy = PricingPolicy.objects.order_by("pk").first()
    return policy or PricingPolicy.objects.create()


class GatewayAccount(models.Model):
    """The institution's own credentials for one gateway, encrypted at rest (MultiFernet)."""

    gateway = models.CharField(max_length=10, choices=Gateways.choices, unique=True)
    public_key = models.CharField(
        max_length=200, blank=True, help_text="Stripe publishable key or Razorpay key id."
    )
    secret_key = EncryptedTextField(blank=True, help_text="Stripe secret key or Razorpay key secret.")
    webhook_secret = EncryptedTextField(blank=True, help_text="The signing secret of the webhook endpoint.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.get_gateway_display()} credentials"

    def __repr__(self) -> str:
        return f"<GatewayAccount {self.gateway} public_key={self.public_key!r}>"

    @property
    def is_complete(self) -> bool:
        return bool(self.public_key and self.secret_key and self.webhook_secret)


class Payment(models.Model):
    """A learner paying for one booking through the institution's gateway."""

    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting payment"
        SUCCEEDED = "succeeded", "Paid"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        REFUNDED = "refunded", "Refunded"
        PARTIALLY_REFUNDED = "partially_refunded", "Partly refunded"

    PAID_STATUSES = (Status.SUCCEEDED, Status.REFUNDED, Status.PARTIALLY_REFUNDED)

    reference = models.CharField(max_length=40, unique=True)
    booking = models.ForeignKey("mentoring.Booking", on_delete=models.PROTECT, related_name="payments")
    learner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments")
    gateway = models.CharField(max_length=10, choices=Gateways.choices)
    amount_minor = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    fee_minor = models.PositiveIntegerField(default=0)
    refunded_minor = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    provider_ref = models.CharField(max_length=120, blank=True)
    provider_payment_id = models.CharField(max_length=120, blank=True)
    # Where to send the learner to pay (a URL, or a form to POST for Razorpay's hosted checkout).
    checkout = models.JSONField(default=dict, blank=True)
    failure_reason = models.CharField(max_length=300, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "provider_ref"],
                condition=~Q(provider_ref=""),
                name="payment_provider_ref_unique",
            ),
            models.CheckConstraint(
                condition=Q(refunded_minor__lte=models.F("amount_minor")), name="payment_refund_le_amount"
            ),
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="payment_amount_positive"),
        ]
        indexes = [models.Index(fields=["booking", "status"]), models.Index(fields=["provider_payment_id"])]

    def __str__(self) -> str:
        return f"Payment {self.reference}"

    @property
    def is_paid(self) -> bool:
        return self.status in self.PAID_STATUSES

    @property
    def refundable_minor(self) -> int:
        return self.amount_minor - self.refunded_minor if self.is_paid else 0


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Refunded"
        FAILED = "failed", "Failed"

    class Kind(models.TextChoices):
        CANCELLATION = "cancellation", "Cancellation"
        NO_SHOW = "no_show", "No-show"
        LATE_PAYMENT = "late_payment", "Payment after the slot was gone"
        MANUAL = "manual", "By an administrator"

    reference = models.CharField(max_length=40, unique=True)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount_minor = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=15, choices=Kind.choices)
    reason = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    provider_refund_id = models.CharField(max_length=120, blank=True, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    failure_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount_minor__gt=0), name="refund_amount_positive")]

    def __str__(self) -> str:
        return f"Refund {self.reference}"


class PayoutAccount(models.Model):
    """A mentor's connected account (Stripe Connect Express / Razorpay Route linked account)."""

    mentor = models.ForeignKey(
        "mentoring.MentorProfile", on_delete=models.CASCADE, related_name="payout_accounts"
    )
    gateway = models.CharField(max_length=10, choices=Gateways.choices)
    account_id = models.CharField(max_length=120)
    ready = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mentor", "gateway"], name="payout_account_one_per_gateway"),
            models.UniqueConstraint(fields=["gateway", "account_id"], name="payout_account_id_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.mentor} on {self.gateway}"


class Payout(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "In transit"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"

    reference = models.CharField(max_length=40, unique=True)
    mentor = models.ForeignKey("mentoring.MentorProfile", on_delete=models.PROTECT, related_name="payouts")
    gateway = models.CharField(max_length=10, choices=Gateways.choices)
    account_id = models.CharField(max_length=120)
    amount_minor = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    provider_transfer_id = models.CharField(max_length=120, blank=True, db_index=True)
    failure_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount_minor__gt=0), name="payout_amount_positive")]

    def __str__(self) -> str:
        return f"Payout {self.reference}"


class Earning(models.Model):
    """A mentor's share of one paid booking, released once the session is completed."""

    class Status(models.TextChoices):
        RELEASED = "released", "Released"
        PAID = "paid", "Paid out"

    booking = models.OneToOneField("mentoring.Booking", on_delete=models.PROTECT, related_name="earning")
    mentor = models.ForeignKey("mentoring.MentorProfile", on_delete=models.PROTECT, related_name="earnings")
    gross_minor = models.PositiveIntegerField(help_text="What the learner's payment left after refunds.")
    commission_minor = models.PositiveIntegerField()
    amount_minor = models.PositiveIntegerField(help_text="The mentor's share.")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RELEASED)
    payout = models.ForeignKey(
        Payout, null=True, blank=True, on_delete=models.SET_NULL, related_name="earnings"
    )
    released_at = models.DateTimeField()

    class Meta:
        ordering = ["-released_at"]
        indexes = [models.Index(fields=["mentor", "status"]), models.Index(fields=["mentor", "released_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(gross_minor=models.F("commission_minor") + models.F("amount_minor")),
                name="earning_adds_up",
            )
        ]

    def __str__(self) -> str:
        return f"Earning for booking {self.booking_id}"


class WebhookEvent(models.Model):
    """Every verified webhook, stored once by the provider's event id (a replay does nothing)."""

    gateway = models.CharField(max_length=10, choices=Gateways.choices)
    event_id = models.CharField(max_length=120)
    type = models.CharField(max_length=80)
    kind = models.CharField(max_length=30)
    payload = models.JSONField(help_text="The provider's event, as sent.")
    details = models.JSONField(default=dict, help_text="What the gateway read from it (ids, amounts).")
    provider_created_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["gateway", "event_id"], name="webhook_event_once")]
        indexes = [models.Index(fields=["processed_at", "received_at"])]

    def __str__(self) -> str:
        return f"{self.gateway} {self.type} {self.event_id}"


class LedgerAccount(models.TextChoices):
    """The chart of accounts. Debits are positive amounts, credits negative."""

    GATEWAY_CASH = "gateway_cash", "Cash at the gateway"  # asset
    GATEWAY_FEES = "gateway_fees", "Gateway fees"  # expense
    LEARNER_FUNDS = "learner_funds", "Paid, not yet earned"  # liability
    REFUNDS_PENDING = "refunds_pending", "Refunds in progress"  # liability
    MENTOR_PAYABLE = "mentor_payable", "Owed to mentors"  # liability, per mentor
    PAYOUTS_IN_TRANSIT = "payouts_in_transit", "Payouts in transit"  # liability
    COMMISSION = "commission", "Commission"  # revenue


class LedgerTransaction(models.Model):
    """One movement of money; its entries sum to zero per currency."""

    key = models.CharField(max_length=80, unique=True, help_text="What it records; posting twice is refused.")
    kind = models.CharField(max_length=30)
    memo = models.CharField(max_length=200, blank=True)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    refund = models.ForeignKey(Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payout = models.ForeignKey(Payout, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    booking_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.key


class LedgerEntry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.CharField(max_length=20, choices=LedgerAccount.choices)
    mentor_id = models.BigIntegerField(null=True, blank=True, help_text="For mentor_payable: whose.")
    amount_minor = models.BigIntegerField(help_text="Debit positive, credit negative.")
    currency = models.CharField(max_length=3)

    class Meta:
        indexes = [models.Index(fields=["account", "currency"])]
        constraints = [models.CheckConstraint(condition=~Q(amount_minor=0), name="ledger_entry_not_zero")]

    def __str__(self) -> str:
        return f"{self.account} {self.amount_minor} {self.currency}"
