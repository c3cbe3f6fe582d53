"""System checks: production never runs with development stand-ins for payments."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def production_payments(app_configs, **kwargs) -> list[Error]:
    if not settings.PRODUCTION:
        return []
    errors = []
    if settings.BILLING_SANDBOX_ENABLED:
        errors.append(
            Error(
                "The sandbox payment gateway is enabled in production.",
                hint="Unset BILLING_SANDBOX_ENABLED: the sandbox confirms bookings without taking money.",
                id="billing.E001",
            )
        )
    overridden = sorted(name for name, base in settings.BILLING_API_BASES.items() if base)
    if overridden:
        errors.append(
            Error(
                f"Payment API addresses are overridden in production: {', '.join(overridden)}.",
                hint="Unset STRIPE_API_BASE / RAZORPAY_API_BASE: they are for local stand-ins.",
                id="billing.E002",
            )
        )
    if settings.TWILIO.get("api_base"):
        errors.append(
            Error(
                "TWILIO_API_BASE is set in production.",
                hint="Unset it: it points SMS at a local stand-in.",
                id="billing.E003",
            )
        )
    return errors
