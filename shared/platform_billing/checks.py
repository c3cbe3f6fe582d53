"""Production never talks to a Stripe stand-in for the platform's own billing."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def production_platform_stripe(app_configs, **kwargs) -> list[Error]:
    if settings.PRODUCTION and settings.PLATFORM_STRIPE.get("api_base"):
        return [
            Error(
                "PLATFORM_STRIPE_API_BASE is set in production.",
                hint="Unset it: it points the platform's Stripe calls at a local stand-in.",
                id="platform_billing.E001",
            )
        ]
    return []
