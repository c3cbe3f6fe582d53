"""A paid-booking scene for billing tests: a mentor with a price, a learner, a held booking."""

from __future__ import annotations

from django.db.models import Sum

from shared.core.testing import HostClient
from tenant_apps.billing import services
from tenant_apps.billing.gateways import gateway_for
from tenant_apps.billing.gateways.sandbox import SIGNATURE_HEADER, SandboxGateway, sign
from tenant_apps.billing.models import LedgerEntry, Payment
from tenant_apps.sessions.bookings import booking_request
from tenant_apps.sessions.models import Booking, MentorProfile

URLS = services.ReturnUrls(
    success="http://x.localhost/billing/return/",
    cancel="http://x.localhost/c/",
    callback="http://x.localhost/cb/",
)


def hold(mentor: MentorProfile, learner, starts_at, minutes: int = 60) -> Booking:
    booking = booking_request(learner=learner, mentor=mentor, starts_at=starts_at, minutes=minutes)
    assert booking.status == Booking.Status.HELD
    return booking


def start_payment(booking: Booking) -> Payment:
    return services.payment_start(booking=booking, learner=booking.learner, urls_for=lambda payment: URLS)


def sandbox() -> SandboxGateway:
    gateway = gateway_for("sandbox")
    assert isinstance(gateway, SandboxGateway)
    return gateway


def sandbox_webhook(event_type: str, data: dict, *, secret: str | None = None) -> tuple[bytes, dict]:
    gateway = sandbox()
    body = gateway.event_body(event_type, data)
    return body, {SIGNATURE_HEADER: sign(body, secret or gateway.credentials.webhook_secret)}


def post_webhook(client: HostClient, gateway: str, body: bytes, headers: dict):
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    return client.post(f"/billing/webhooks/{gateway}/", data=body, content_type="application/json", **extra)


def pay_in_sandbox(payment: Payment) -> dict:
    """The learner presses Pay on the sandbox checkout; returns the provider's record."""
    return sandbox().checkout_finish(payment.provider_ref, "pay")


def balances() -> dict[str, int]:
    return {
        row["account"]: row["total"]
        for row in LedgerEntry.objects.values("account").annotate(total=Sum("amount_minor"))
    }


def assert_balanced() -> None:
    per_txn = LedgerEntry.objects.values("transaction_id", "currency").annotate(total=Sum("amount_minor"))
    assert all(row["total"] == 0 for row in per_txn), list(per_txn)
