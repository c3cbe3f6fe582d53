"""A complete paid booking with each real SDK against its local stand-in:
hold → checkout → verified → confirmed → completed → earning released → payout."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, host_of
from tenant_apps.billing import services
from tenant_apps.billing.models import Earning, GatewayAccount, Payment, Payout, PayoutAccount, pricing_policy
from tenant_apps.sessions.lifecycle import transition
from tenant_apps.sessions.models import Attendance, Booking
from tenant_apps.sessions.tests.factories import make_learner, make_mentor, next_weekday_at

from .helpers import hold, post_webhook

PRICE = 5_000
ADDRESS = {
    "street1": "12 MG Road",
    "street2": "Indiranagar",
    "city": "Bengaluru",
    "state": "KARNATAKA",
    "postal_code": "560038",
    "country": "IN",
}


def set_gateway(name: str, public: str, secret: str, webhook_secret: str) -> None:
    policy = pricing_policy()
    policy.gateway = name
    policy.commission_bps = 1_500
    policy.save()
    GatewayAccount.objects.update_or_create(
        gateway=name, defaults={"public_key": public, "secret_key": secret, "webhook_secret": webhook_secret}
    )


def complete_by_attendance(booking: Booking) -> None:
    Attendance.objects.create(booking=booking, user=booking.learner, joined_at=booking.starts_at)
    Attendance.objects.create(booking=booking, user=booking.mentor.user, joined_at=booking.starts_at)
    transition(booking=booking, event="complete", actor=None, note="Both attended.")


@pytest.fixture
def people(institution_a):
    mentor = make_mentor(institution_a, email="flow-m@a.example", price_minor=PRICE)
    learner = make_learner(institution_a, email="flow-l@a.example")
    return mentor, learner


def urls_for(payment: Payment) -> services.ReturnUrls:
    base = f"http://{connection.tenant.slug}.localhost"
    return services.ReturnUrls(
        success=f"{base}/billing/payments/{payment.reference}/return/",
        cancel=f"{base}/billing/payments/{payment.reference}/cancelled/",
        callback=f"{base}/billing/payments/{payment.reference}/callback/",
    )


def test_a_complete_paid_booking_with_stripe(institution_a, people, stripe_standin, settings):
    settings.BILLING_API_BASES = {"stripe": stripe_standin.api_base}
    mentor, learner = people
    client = HostClient(host_of(institution_a))
    webhook_secret = "whsec_flow_test_secret"
    with tenant_context(institution_a):
        set_gateway("stripe", "pk_test_flow", "sk_test_flow", webhook_secret)
        booking = hold(mentor, learner, next_weekday_at(14, weeks_ahead=2))
        payment = services.payment_start(booking=booking, learner=learner, urls_for=urls_for)
        assert payment.provider_ref.startswith("cs_")
        assert payment.checkout["redirect_url"].startswith(stripe_standin.api_base)
        event = stripe_standin.pay(payment.provider_ref)
    body, headers = stripe_standin.webhook(event, webhook_secret)
    response = post_webhook(client, "stripe", body, headers)
    assert response.status_code == 200, response.content
    assert post_webhook(client, "stripe", body, headers).json()["replay"] is True
    bad_body, bad_headers = stripe_standin.webhook(event, "whsec_someone_else")
    assert post_webhook(client, "stripe", bad_body, bad_headers).status_code == 400
    with tenant_context(institution_a):
        payment.refresh_from_db()
        booking.refresh_from_db()
        assert (payment.status, booking.status) == (Payment.Status.SUCCEEDED, Booking.Status.CONFIRMED)
        assert payment.provider_payment_id.startswith("pi_")
        services.payment_verify(payment=payment)  # the return page asking again changes nothing

        complete_by_attendance(booking)
        earning = Earning.objects.get(booking=booking)
        assert (earning.commission_minor, earning.amount_minor) == (750, 4_250)

        url = services.payout_onboarding(
            mentor=mentor, return_url="http://a.localhost/e/", refresh_url="http://a.localhost/e/"
        )
        account = PayoutAccount.objects.get(mentor=mentor)
        assert account.account_id.startswith("acct_") and url and not account.ready
        account_event = stripe_standin.complete_onboarding(account.account_id)
    body, headers = stripe_standin.webhook(account_event, webhook_secret)
    assert post_webhook(client, "stripe", body, headers).status_code == 200
    with tenant_context(institution_a):
        assert PayoutAccount.objects.get(pk=account.pk).ready
        payout = services.payout_create(mentor=mentor, created_by=None)
        services.payout_submit(payout=payout)
        payout.refresh_from_db()
        assert payout.status == Payout.Status.PAID and payout.provider_transfer_id.startswith("tr_")
        transfer = next(t for t in stripe_standin.transfers() if t["id"] == payout.provider_transfer_id)
        assert (transfer["amount"], transfer["destination"]) == (4_250, account.account_id)
        assert Earning.objects.get(pk=earning.pk).status == Earning.Status.PAID

        # A refund through Stripe, settled by its webhook.
        refund = services.refund_create(payment=payment, amount_minor=1_000, kind="manual", reason="goodwill")
        services.refund_submit(refund=refund)
        refund.refresh_from_db()
        refund_event = stripe_standin.refund_event(refund.provider_refund_id)
    body, headers = stripe_standin.webhook(refund_event, webhook_secret)
    assert post_webhook(client, "stripe", body, headers).status_code == 200
    with tenant_context(institution_a):
        refund.refresh_from_db()
        assert refund.status == "succeeded"


def test_a_complete_paid_booking_with_razorpay(institution_a, people, razorpay_standin, settings):
    settings.BILLING_API_BASES = {"razorpay": razorpay_standin.api_base}
    mentor, learner = people
    client = HostClient(host_of(institution_a))
    with tenant_context(institution_a):
        set_gateway(
            "razorpay", razorpay_standin.key_id, razorpay_standin.key_secret, razorpay_standin.webhook_secret
        )
        policy = pricing_policy()
        policy.currency = "INR"
        policy.save()
        booking = hold(mentor, learner, next_weekday_at(15, weeks_ahead=2))
        payment = services.payment_start(booking=booking, learner=learner, urls_for=urls_for)
        assert payment.provider_ref.startswith("order_")
        assert payment.checkout["form_action"].endswith("/v1/checkout/embedded")
        assert payment.checkout["form_fields"]["order_id"] == payment.provider_ref
        callback, (hook_body, hook_headers) = razorpay_standin.pay(payment.provider_ref)

    # The hosted checkout POSTs the signed result back; a forged signature changes nothing.
    forged = dict(callback, razorpay_signature="0" * 64)
    assert client.post(f"/billing/payments/{payment.reference}/callback/", forged).status_code == 400
    with tenant_context(institution_a):
        assert Booking.objects.get(pk=booking.pk).status == Booking.Status.HELD
    response = client.post(f"/billing/payments/{payment.reference}/callback/", callback)
    assert response.status_code == 302
    with tenant_context(institution_a):
        payment.refresh_from_db()
        assert payment.status == Payment.Status.SUCCEEDED and payment.provider_payment_id.startswith("pay_")
        assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CONFIRMED
    # The webhook for the same payment arrives too: stored, nothing credited twice.
    assert post_webhook(client, "razorpay", hook_body, hook_headers).status_code == 200
    assert post_webhook(client, "razorpay", hook_body, hook_headers).json()["replay"] is True
    with tenant_context(institution_a):
        from tenant_apps.billing.models import LedgerTransaction

        assert LedgerTransaction.objects.filter(kind="charge", payment=payment).count() == 1
        booking.refresh_from_db()
        complete_by_attendance(booking)
        assert Earning.objects.get(booking=booking).amount_minor == 4_250

        url = services.payout_onboarding(
            mentor=mentor,
            return_url="http://a.localhost/e/",
            refresh_url="http://a.localhost/e/",
            address=ADDRESS,
        )
        assert url == ""
        account = PayoutAccount.objects.get(mentor=mentor)
        assert not account.ready
        body, headers = razorpay_standin.activate(account.account_id)
    assert post_webhook(client, "razorpay", body, headers).status_code == 200
    with tenant_context(institution_a):
        assert PayoutAccount.objects.get(pk=account.pk).ready
        payout = services.payout_create(mentor=mentor, created_by=None)
        services.payout_submit(payout=payout)
        payout.refresh_from_db()
        transfer = razorpay_standin.transfer(payout.provider_transfer_id)
        assert transfer["amount"] == 4_250
        if payout.status == Payout.Status.PENDING:
            body, headers = razorpay_standin.webhook(
                "transfer.processed", {"transfer": {"entity": dict(transfer, status="processed")}}
            )
    if payout.status == Payout.Status.PENDING:
        assert post_webhook(client, "razorpay", body, headers).status_code == 200
    with tenant_context(institution_a):
        payout.refresh_from_db()
        assert payout.status == Payout.Status.PAID
        assert payout.amount_minor == 4_250
