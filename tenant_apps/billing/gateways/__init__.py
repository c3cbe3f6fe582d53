"""Pick the gateway implementation for the current institution (docs/payments.md)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import connection
from django.utils.module_loading import import_string

from ..models import GatewayAccount, Gateways
from .base import Credentials, Gateway, GatewayError

IMPLEMENTATIONS = {
    Gateways.STRIPE: "tenant_apps.billing.gateways.stripe_gateway.StripeGateway",
    Gateways.RAZORPAY: "tenant_apps.billing.gateways.razorpay_gateway.RazorpayGateway",
    Gateways.SANDBOX: "tenant_apps.billing.gateways.sandbox.SandboxGateway",
}


def sandbox_account() -> GatewayAccount:
    """The sandbox's credentials: made up on first use (development and tests only)."""
    account = GatewayAccount.objects.filter(gateway=Gateways.SANDBOX).first()
    if account is None:
        account = GatewayAccount.objects.create(
            gateway=Gateways.SANDBOX,
            public_key=f"sbx_pk_{secrets.token_hex(8)}",
            secret_key=f"sbx_sk_{secrets.token_hex(16)}",
            webhook_secret=f"sbx_whsec_{secrets.token_hex(16)}",
        )
    return account


def gateway_for(name: str, **options) -> Gateway:
    """The institution's gateway `name`, with its credentials; GatewayError if it cannot be used.

    `options` go to the implementation (Razorpay: `account_address` for a mentor's linked account).
    """
    if name not in IMPLEMENTATIONS:
        raise GatewayError("Online payments are not set up for this institution.", code="no_gateway")
    if name == Gateways.SANDBOX:
        if not settings.BILLING_SANDBOX_ENABLED:
            raise GatewayError("The sandbox gateway is only available in development.", code="no_gateway")
        account = sandbox_account()
    else:
        account = GatewayAccount.objects.filter(gateway=name).first()
        if account is None or not account.is_complete:
            raise GatewayError(
                f"{Gateways(name).label} is not fully set up yet: an administrator must enter its keys.",
                code="gateway_not_configured",
            )
    credentials = Credentials(
        public_key=account.public_key, secret_key=account.secret_key, webhook_secret=account.webhook_secret
    )
    implementation = import_string(IMPLEMENTATIONS[name])
    if name == Gateways.RAZORPAY:
        options.setdefault("business_name", connection.tenant.name)
    else:
        options.pop("account_address", None)
    return implementation(credentials, api_base=settings.BILLING_API_BASES.get(name) or "", **options)
