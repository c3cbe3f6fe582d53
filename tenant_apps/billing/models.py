"""The institution's pricing policy (one row per institution schema)."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class PricingPolicy(models.Model):
    """Set by the institution's admins; read by booking (price bounds, holds, cancellations)."""

    min_price_minor = models.PositiveIntegerField(
        default=0, help_text="Lowest price a mentor may ask per session, in minor units (0 = free allowed)."
    )
    max_price_minor = models.PositiveIntegerField(
        default=50_000, help_text="Highest price a mentor may ask per session, in minor units."
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
        help_text="Refund (percent) when cancelling later than that.",
    )

    class Meta:
        verbose_name_plural = "pricing policy"

    def __str__(self) -> str:
        return "Pricing policy"

    def clean(self) -> None:
        if self.min_price_minor > self.max_price_minor:
            raise ValidationError({"max_price_minor": "The highest price must not be below the lowest."})


def pricing_policy() -> PricingPolicy:
    """The current institution's policy (created with defaults on first use)."""
    policy = PricingPolicy.objects.order_by("pk").first()
    return policy or PricingPolicy.objects.create()
