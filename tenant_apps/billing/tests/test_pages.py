"""The billing pages of admins and mentors, and receipts: who sees what, forms, and the money they move.

Payments are made through the services and the sandbox gateway for real: a held booking, a
checkout, the learner paying on the sandbox's side, and the server verifying it with the gateway.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, host_of, sign_in
from tenant_apps.accounts.models import User
from tenant_apps.sessions.models import Booking, MentorProfile
from tenant_apps.sessions.tests.factories import make_learner, make_mentor, next_weekday_at
from tenants.models import Institution

from .. import services, tasks
from ..gateways import gateway_for
from ..models import (
    Earning,
    GatewayAccount,
    Gateways,
    Payment,
    Payout,
    PayoutAccount,
    Refund,
    pricing_policy,
)
from .helpers import hold, pay_in_sandbox, post_webhook, start_payment

PRICE = 2500  # GBP 25.00


# --- Scenes (test_reconciliation.py uses them too) -----------------------------------------------


def slot(index: int) -> datetime:
    """The index-th free half hour of a mentor's week (Mon–Fri 09:00–17:00 UTC), next week."""
    return next_weekday_at(9 + index % 8, weekday=(index // 8) % 5)


def use_sandbox(**policy_fields) -> None:
    policy = pricing_policy()
    policy.gateway = Gateways.SANDBOX
    for name, value in policy_fields.items():
        setattr(policy, name, value)
    policy.save()


def pay(mentor: MentorProfile, learner: User, starts_at: datetime) -> Payment:
    """A paid, confirmed booking: held, checked out, paid on the sandbox's side, verified by the server
    with the gateway (run inside the institution's schema)."""
    payment = start_payment(hold(mentor, learner, starts_at, minutes=30))
    pay_in_sandbox(payment)
    payment = services.payment_verify(payment=payment)
    assert payment.status == Payment.Status.SUCCEEDED
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CONFIRMED
    return payment


def admin_of(institution: Institution) -> User:
    with tenant_context(institution):
        return User.objects.get(role=User.Role.ADMIN)


def client_for(institution: Institution, email: str) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, email)
    return client


def text(response) -> str:
    return response.content.decode()


# --- Fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def scene(institution_a):
    """A mentor charging GBP 25.00, a learner, the sandbox gateway; runs in A's schema."""
    mentor = make_mentor(institution_a, email="mo@a.example", price_minor=PRICE, max_sessions_per_day=16)
    learner = make_learner(institution_a, email="lee@a.example")
    with tenant_context(institution_a):
        use_sandbox()
        yield mentor, learner


@pytest.fixture
def admin_client(institution_a) -> HostClient:
    return client_for(institution_a, admin_of(institution_a).email)


# --- Who may see what ----------------------------------------------------------------------------------

ADMIN_PAGES = ["/billing/settings/", "/billing/payments/", "/billing/payouts/", "/billing/reconciliation/"]


def test_admin_pages_render_for_admins_and_are_forbidden_to_everyone_else(scene, institution_a, admin_client):
    mentor, learner = scene
    payment = pay(mentor, learner, slot(0))
    for page in [*ADMIN_PAGES, f"/billing/payments/{payment.reference}/"]:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert "Billing" in text(response)

    for email in ("lee@a.example", "mo@a.example"):
        other = client_for(institution_a, email)
        for page in [*ADMIN_PAGES, f"/billing/payments/{payment.reference}/"]:
            response = other.get(page)
            assert response.status_code == 403, (email, page)
            assert "administrators" in text(response)
        assert other.post("/billing/payouts/", {"action": "run"}).status_code == 403
        assert (
            other.post(f"/billing/payments/{payment.reference}/", {"amount": "1", "reason": "x"}).status_code
            == 403
        )

    anonymous = HostClient(host_of(institution_a))
    response = anonymous.get("/billing/payments/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not Refund.objects.exists()


def test_an_unknown_payment_is_404_for_admins(scene, admin_client):
    assert admin_client.get("/billing/payments/pay_nope/").status_code == 404


# --- Settings ------------------------------------------------------------------------------------------


def policy_data(**overrides: str) -> dict[str, str]:
    data = {
        "form": "policy",
        "policy-currency": "GBP",
        "policy-gateway": "sandbox",
        "policy-commission_percent": "12.5",
        "policy-min_price": "5",
        "policy-max_price": "80.50",
        "policy-free_sessions_per_learner": "1",
        "policy-payment_hold_minutes": "20",
        "policy-full_refund_hours": "48",
        "policy-late_refund_percent": "50",
        "policy-no_show_refund_percent": "10",
    }
    data.update({f"policy-{name}" if name != "form" else name: value for name, value in overrides.items()})
    return data


def policy_snapshot(institution: Institution) -> dict:
    with tenant_context(institution):
        policy = pricing_policy()
    return {field.name: getattr(policy, field.name) for field in policy._meta.concrete_fields}


def test_the_settings_form_saves_the_pricing_policy(institution_a, admin_client):
    page = admin_client.get("/billing/settings/")
    assert page.status_code == 200
    assert 'name="policy-commission_percent"' in text(page)

    response = admin_client.post("/billing/settings/", policy_data())
    assert response.status_code == 302, text(response)
    with tenant_context(institution_a):
        policy = pricing_policy()
    assert policy.gateway == "sandbox"
    assert policy.commission_bps == 1250
    assert (policy.min_price_minor, policy.max_price_minor) == (500, 8050)
    assert policy.free_sessions_per_learner == 1
    assert policy.payment_hold_minutes == 20
    assert policy.full_refund_hours == 48
    assert (policy.late_refund_percent, policy.no_show_refund_percent) == (50, 10)
    assert "The pricing policy is saved." in text(admin_client.get(response["Location"]))

    # Zero-decimal currencies take whole amounts, converted to minor units as they are.
    response = admin_client.post(
        "/billing/settings/", policy_data(currency="JPY", min_price="500", max_price="9000")
    )
    assert response.status_code == 302
    with tenant_context(institution_a):
        policy = pricing_policy()
    assert (policy.currency, policy.min_price_minor, policy.max_price_minor) == ("JPY", 500, 9000)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"commission_percent": "12.345"}, "decimal places"),
        ({"commission_percent": "100.5"}, "less than or equal to 100"),
        ({"commission_percent": "ten"}, "Enter a number"),
        ({"min_price": "90", "max_price": "80"}, "must not be below the lowest"),
        ({"currency": "JPY", "min_price": "10.5"}, "JPY amounts have no decimals"),
        ({"max_price": "99999999999"}, "too large"),
        ({"min_price": "-1"}, "greater than or equal to 0"),
        ({"payment_hold_minutes": "0"}, "greater than or equal to 1"),
        ({"late_refund_percent": "101"}, "less than or equal to 100"),
        ({"currency": "XXX"}, "Select a valid choice"),
        ({"gateway": "paypal"}, "Select a valid choice"),
        ({"gateway": "stripe"}, "Enter the Stripe keys below"),
    ],
)
def test_the_settings_form_shows_errors_and_saves_nothing(institution_a, admin_client, overrides, message):
    before = policy_snapshot(institution_a)
    response = admin_client.post("/billing/settings/", policy_data(**overrides))
    assert response.status_code == 400
    assert message in text(response)
    assert policy_snapshot(institution_a) == before


def test_the_sandbox_can_only_be_chosen_where_it_is_enabled(institution_a, admin_client, settings):
    with tenant_context(institution_a):
        policy = pricing_policy()
        policy.gateway = Gateways.NONE
        policy.save()
    settings.BILLING_SANDBOX_ENABLED = False
    response = admin_client.post("/billing/settings/", policy_data())
    assert response.status_code == 400
    assert "The sandbox gateway is only available in development." in text(response)
    with tenant_context(institution_a):
        assert pricing_policy().gateway == Gateways.NONE


def test_gateway_keys_are_stored_encrypted_never_shown_and_kept_when_left_blank(institution_a, admin_client):
    secret, webhook_secret = "sk_test_51SuperSecretValue", "whsec_VerySecretSigningKey"
    response = admin_client.post(
        "/billing/settings/",
        {
            "form": "stripe",
            "stripe-public_key": "pk_test_51PublicValue",
            "stripe-secret_key": secret,
            "stripe-webhook_secret": webhook_secret,
        },
    )
    assert response.status_code == 302, text(response)
    with tenant_context(institution_a):
        account = GatewayAccount.objects.get(gateway="stripe")
        assert (account.public_key, account.secret_key, account.webhook_secret) == (
            "pk_test_51PublicValue",
            secret,
            webhook_secret,
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT secret_key, webhook_secret FROM billing_gatewayaccount WHERE gateway = 'stripe'"
            )
            raw_secret, raw_webhook = cursor.fetchone()
    assert raw_secret and secret not in raw_secret and "SuperSecret" not in raw_secret
    assert raw_webhook and webhook_secret not in raw_webhook

    page = text(admin_client.get("/billing/settings/"))
    assert secret not in page and webhook_secret not in page
    assert page.count("•••• set") == 2
    stripe_webhook = re.search(r'data-testid="webhook-url-stripe">([^<]+)<', page).group(1)
    assert stripe_webhook.startswith("http") and stripe_webhook.endswith("/billing/webhooks/stripe/")
    assert host_of(institution_a) in stripe_webhook
    assert "/billing/webhooks/razorpay/" in page

    # Blank secrets keep the stored ones; the public key changes.
    response = admin_client.post(
        "/billing/settings/",
        {
            "form": "stripe",
            "stripe-public_key": "pk_test_51Other",
            "stripe-secret_key": "",
            "stripe-webhook_secret": "",
        },
    )
    assert response.status_code == 302
    with tenant_context(institution_a):
        account = GatewayAccount.objects.get(gateway="stripe")
    assert (account.public_key, account.secret_key, account.webhook_secret) == (
        "pk_test_51Other",
        secret,
        webhook_secret,
    )

    # Now Stripe can be chosen as the institution's gateway.
    assert admin_client.post("/billing/settings/", policy_data(gateway="stripe")).status_code == 302
    with tenant_context(institution_a):
        assert pricing_policy().gateway == "stripe"


@pytest.mark.parametrize(
    ("gateway", "fields", "message"),
    [
        (
            "stripe",
            {"public_key": "sk_test_x", "secret_key": "sk_test_y", "webhook_secret": "whsec_z"},
            "pk_test_",
        ),
        (
            "stripe",
            {"public_key": "pk_test_x", "secret_key": "pk_test_y", "webhook_secret": "whsec_z"},
            "starts with sk_",
        ),
        (
            "stripe",
            {"public_key": "pk_test_x", "secret_key": "sk_test_y", "webhook_secret": "nope"},
            "whsec_",
        ),
        (
            "stripe",
            {"public_key": "pk_live_x", "secret_key": "sk_test_y", "webhook_secret": "whsec_z"},
            "same mode",
        ),
        (
            "stripe",
            {"public_key": "pk_test_x", "secret_key": "", "webhook_secret": "whsec_z"},
            "This key is required",
        ),
        ("razorpay", {"public_key": "key_x", "secret_key": "s", "webhook_secret": "w"}, "rzp_test_"),
        ("razorpay", {"public_key": "", "secret_key": "s", "webhook_secret": "w"}, "This field is required"),
    ],
)
def test_gateway_keys_are_validated_and_secrets_never_echoed(
    institution_a, admin_client, gateway, fields, message
):
    data = {"form": gateway, **{f"{gateway}-{name}": value for name, value in fields.items()}}
    response = admin_client.post("/billing/settings/", data)
    assert response.status_code == 400
    assert message in text(response)
    for name in ("secret_key", "webhook_secret"):
        if len(fields[name]) > 1:
            assert f'value="{fields[name]}"' not in text(response)
    with tenant_context(institution_a):
        assert not GatewayAccount.objects.filter(gateway=gateway).exists()


def test_razorpay_keys_are_saved(institution_a, admin_client):
    data = {
        "form": "razorpay",
        "razorpay-public_key": "rzp_test_1DP5mmOlF5G5ag",
        "razorpay-secret_key": "thisisasecret",
        "razorpay-webhook_secret": "hooksecret",
    }
    assert admin_client.post("/billing/settings/", data).status_code == 302
    with tenant_context(institution_a):
        account = GatewayAccount.objects.get(gateway="razorpay")
    assert account.is_complete and account.secret_key == "thisisasecret"


def test_an_unknown_settings_form_is_refused(admin_client):
    response = admin_client.post("/billing/settings/", {"form": "paypal"})
    assert response.status_code == 400
    assert "not recognised" in text(response)


# --- Payments and refunds --------------------------------------------------------------------------------


def test_the_payments_list_shows_each_payment_with_a_constant_number_of_queries(
    scene, institution_a, admin_client
):
    mentor, learner = scene
    payments = [pay(mentor, learner, slot(i)) for i in range(3)]
    admin_client.get("/billing/payments/")  # the institution's lookups are cached from here on

    with CaptureQueriesContext(connection) as three:
        response = admin_client.get("/billing/payments/")
    page = text(response)
    assert response.status_code == 200
    for payment in payments:
        assert f'data-testid="payment-{payment.reference}"' in page
        assert f"/billing/payments/{payment.reference}/" in page
    assert "GBP 25.00" in page and "Lee Learner" in page and "Mo Mentor" in page and "Sandbox" in page

    payments += [pay(mentor, learner, slot(i)) for i in range(3, 15)]
    with CaptureQueriesContext(connection) as fifteen:
        response = admin_client.get("/billing/payments/")
    assert text(response).count('data-testid="payment-') == 15
    assert len(fifteen.captured_queries) == len(three.captured_queries)

    # Newest first, filtered by status, and odd page numbers or statuses are no error.
    page = text(response)
    assert page.index(payments[-1].reference) < page.index(payments[0].reference)
    assert (
        admin_client.get("/billing/payments/?status=failed").content.decode().count('data-testid="payment-')
        == 0
    )
    assert admin_client.get("/billing/payments/?status=bogus&page=abc").status_code == 200
    assert admin_client.get("/billing/payments/?page=999").status_code == 200


def test_the_payment_page_shows_the_ledger_and_refunds_by_form(scene, institution_a, admin_client):
    mentor, learner = scene
    payment = pay(mentor, learner, slot(0))
    url = f"/billing/payments/{payment.reference}/"

    page = text(admin_client.get(url))
    assert "GBP 25.00" in page
    assert "Cash at the gateway" in page and "Paid, not yet earned" in page and "Gateway fees" in page
    assert "charge" in page and "fee" in page
    assert 'name="amount"' in page

    for amount, message in [
        ("0", "Enter an amount above zero."),
        ("-5", "Enter an amount above zero."),
        ("25.01", "At most GBP 25.00 can be refunded."),
        ("1.234", "GBP amounts have at most 2 decimals."),
        ("lots", "Enter a number."),
    ]:
        response = admin_client.post(url, {"amount": amount, "reason": "Mentor was late"})
        assert response.status_code == 400, amount
        assert message in text(response)
    response = admin_client.post(url, {"amount": "5", "reason": "  "})
    assert response.status_code == 400
    assert "This field is required." in text(response)
    assert not Refund.objects.exists()

    # A partial refund: recorded at once, settled when the gateway confirms it.
    response = admin_client.post(url, {"amount": "10.00", "reason": "Mentor was late"})
    assert response.status_code == 302
    refund = Refund.objects.get()
    admin = admin_of(institution_a)
    assert (refund.amount_minor, refund.kind, refund.reason, refund.requested_by_id) == (
        1000,
        Refund.Kind.MANUAL,
        "Mentor was late",
        admin.pk,
    )
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_minor) == (Payment.Status.PARTIALLY_REFUNDED, 1000)
    tasks.refund_submit.run(refund.pk)
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED

    page = text(admin_client.get(response["Location"]))
    assert "is on its way" in page
    assert f'data-testid="refund-{refund.reference}"' in page
    assert "GBP 10.00" in page and "By an administrator" in page and "Refunds in progress" in page
    assert f"?refund={refund.reference}" in page

    # What is left: more is refused, all of it refunds in full.
    response = admin_client.post(url, {"amount": "15.01", "reason": "Rest"})
    assert "At most GBP 15.00 can be refunded." in text(response)
    assert admin_client.post(url, {"amount": "15", "reason": "Rest"}).status_code == 302
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_minor) == (Payment.Status.REFUNDED, PRICE)
    page = text(admin_client.get(url))
    assert "refunded in full" in page and 'name="amount"' not in page
    response = admin_client.post(url, {"amount": "1", "reason": "Again"}, follow=True)
    assert "Nothing is left to refund" in text(response)
    assert Refund.objects.count() == 2


# --- Payouts -------------------------------------------------------------------------------------------


def delivered(mentor: MentorProfile, learner: User, starts_at: datetime) -> Earning:
    """A paid session that took place: the mentor's earning is released."""
    payment = pay(mentor, learner, starts_at)
    earning = services.earning_release(booking=payment.booking)
    assert earning is not None
    return earning


def ready_payout_account(mentor: MentorProfile) -> PayoutAccount:
    """The mentor went through the sandbox's onboarding to the end."""
    url = services.payout_onboarding(mentor=mentor, return_url="http://x.test/", refresh_url="http://x.test/")
    assert url
    account = PayoutAccount.objects.get(mentor=mentor)
    sandbox = gateway_for(Gateways.SANDBOX)
    sandbox.onboarding_finish(account.account_id)
    # What the account.updated webhook the sandbox sends would record.
    PayoutAccount.objects.filter(pk=account.pk).update(ready=True)
    account.refresh_from_db()
    return account


def test_payouts_pay_mentors_whose_payout_account_is_ready(scene, institution_a, admin_client):
    mentor, learner = scene
    other = make_mentor(institution_a, email="max@a.example", full_name="Max Mentor", price_minor=PRICE)
    first = delivered(mentor, learner, slot(0))
    second = delivered(mentor, learner, slot(1))
    delivered(other, learner, slot(2))
    ready_payout_account(mentor)
    # 10% commission by default: GBP 22.50 each.
    assert first.amount_minor == second.amount_minor == 2250

    page = text(admin_client.get("/billing/payouts/"))
    row = page[page.index(f'data-testid="mentor-{mentor.pk}"') :]
    assert "GBP 45.00" in row[: row.index("</tr>")] and "Ready" in row[: row.index("</tr>")]
    other_row = page[page.index(f'data-testid="mentor-{other.pk}"') :]
    assert "Not set up" in other_row[: other_row.index("</tr>")]

    # Max has not set up payouts: refused with a message, nothing is paid.
    response = admin_client.post("/billing/payouts/", {"action": "mentor", "mentor": other.pk}, follow=True)
    assert "Max Mentor has not finished setting up payouts." in text(response)
    for bad in (
        {"action": "mentor", "mentor": "x"},
        {"action": "mentor", "mentor": "99999"},
        {"action": "mentor", "mentor": "9" * 30},
        {"action": "?"},
    ):
        assert admin_client.post("/billing/payouts/", bad).status_code == 302
    assert not Payout.objects.exists()

    response = admin_client.post("/billing/payouts/", {"action": "run"}, follow=True)
    assert "1 payout of GBP 45.00 sent." in text(response)
    payout = Payout.objects.get()
    assert (payout.mentor_id, payout.amount_minor, payout.status) == (mentor.pk, 4500, Payout.Status.PENDING)
    assert set(Earning.objects.filter(mentor=mentor).values_list("status", flat=True)) == {
        Earning.Status.PAID
    }

    tasks.payout_submit.run(payout.pk)  # what the worker does after the commit
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID and payout.provider_transfer_id.startswith("sbx_tr_")
    page = text(admin_client.get("/billing/payouts/"))
    assert payout.provider_transfer_id in page
    assert f'data-testid="payout-{payout.reference}"' in page

    # Nothing left for Mo; Max still waits for his account.
    response = admin_client.post("/billing/payouts/", {"action": "run"}, follow=True)
    assert "There were no released earnings" in text(response)
    response = admin_client.post("/billing/payouts/", {"action": "mentor", "mentor": mentor.pk}, follow=True)
    assert "Mo Mentor has no released earnings to pay out." in text(response)
    assert Payout.objects.count() == 1


# --- A mentor's earnings ---------------------------------------------------------------------------------


def test_the_earnings_page_shows_a_mentor_their_money(scene, institution_a):
    mentor, learner = scene
    earning = delivered(mentor, learner, slot(0))
    delivered(mentor, learner, slot(1))
    client = client_for(institution_a, "mo@a.example")

    response = client.get("/billing/earnings/")
    assert response.status_code == 200
    page = text(response)
    assert re.search(r'data-testid="released">GBP 45.00<', page)
    assert re.search(r'data-testid="paid">GBP 0.00<', page)
    assert f'data-testid="earning-{earning.pk}"' in page and "GBP 22.50" in page and "GBP 2.50" in page
    assert "vendor/chartjs/chart.umd.min.js" in page and "js/earnings.js" in page
    chart = json.loads(
        re.search(r'id="earnings-chart-data" type="application/json">(.*?)</script>', page).group(1)
    )
    assert len(chart["labels"]) == len(chart["values_minor"]) == 12
    assert chart["values_minor"][-1] == 4500 and sum(chart["values_minor"]) == 4500
    assert (chart["currency"], chart["exponent"]) == ("GBP", 2)
    assert "Set up payouts" in page

    # After a payout the totals move.
    ready_payout_account(mentor)
    payout = services.payout_create(mentor=mentor, created_by=None)
    assert re.search(r'data-testid="in-transit">GBP 45.00<', text(client.get("/billing/earnings/")))
    tasks.payout_submit.run(payout.pk)
    page = text(client.get("/billing/earnings/"))
    assert re.search(r'data-testid="paid">GBP 45.00<', page)
    assert re.search(r'data-testid="released">GBP 0.00<', page)
    assert f'data-testid="payout-{payout.reference}"' in page and "Set up payouts" not in page


def test_the_earnings_page_is_for_mentors_only(scene, institution_a, admin_client):
    learner_client = client_for(institution_a, "lee@a.example")
    response = learner_client.get("/billing/earnings/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert learner_client.post("/billing/earnings/onboarding/").status_code == 302
    assert not PayoutAccount.objects.exists()
    assert admin_client.get("/billing/earnings/").status_code == 302
    anonymous = HostClient(host_of(institution_a))
    assert "/accounts/login/" in anonymous.get("/billing/earnings/")["Location"]


def test_setting_up_payouts_goes_to_the_gateway_and_back(scene, institution_a):
    mentor, _ = scene
    client = client_for(institution_a, "mo@a.example")
    assert client.get("/billing/earnings/onboarding/").status_code == 405

    response = client.post("/billing/earnings/onboarding/")
    assert response.status_code == 302
    account = PayoutAccount.objects.get(mentor=mentor)
    assert not account.ready
    assert (
        response["Location"]
        == f"http://{host_of(institution_a)}/billing/sandbox/onboarding/{account.account_id}/"
    )

    # The mentor finishes on the provider's side, which sends them back to their earnings.
    finished = client.post(response["Location"])
    assert finished.status_code == 302 and finished["Location"].endswith("/billing/earnings/")
    response = client.post("/billing/earnings/onboarding/", follow=True)
    assert response.redirect_chain[-1][0] == "/billing/earnings/"
    assert "Payouts are set up." in text(response)
    assert "Ready" in text(response)


def test_setting_up_payouts_without_a_gateway_says_why(scene, institution_a):
    policy = pricing_policy()
    policy.gateway = Gateways.NONE
    policy.save()
    client = client_for(institution_a, "mo@a.example")
    assert "does not pay mentors online" in text(client.get("/billing/earnings/"))
    response = client.post("/billing/earnings/onboarding/", follow=True)
    assert "Online payments are not set up for this institution." in text(response)


def test_razorpay_payouts_are_set_up_with_the_mentors_address(institution_a, razorpay_standin, settings):
    settings.BILLING_API_BASES = {"razorpay": razorpay_standin.api_base}
    mentor = make_mentor(institution_a, email="rina@a.example", full_name="Rina Rao", price_minor=PRICE)
    with tenant_context(institution_a):
        GatewayAccount.objects.create(
            gateway="razorpay",
            public_key=razorpay_standin.key_id,
            secret_key=razorpay_standin.key_secret,
            webhook_secret=razorpay_standin.webhook_secret,
        )
        policy = pricing_policy()
        policy.gateway, policy.currency = Gateways.RAZORPAY, "INR"
        policy.save()
    client = client_for(institution_a, "rina@a.example")
    page = text(client.get("/billing/earnings/"))
    assert 'name="address-street1"' in page and 'name="address-postal_code"' in page

    # Without an address nothing is created at Razorpay; the form says what is missing.
    response = client.post("/billing/earnings/onboarding/", {"address-street1": "12 MG Road"})
    assert response.status_code == 400
    assert text(response).count("This field is required.") == 5
    with tenant_context(institution_a):
        assert not PayoutAccount.objects.exists()

    address = {
        "address-street1": "12 MG Road",
        "address-street2": "Indiranagar",
        "address-city": "Bengaluru",
        "address-state": "Karnataka",
        "address-postal_code": "560038",
        "address-country": "IN",
    }
    response = client.post("/billing/earnings/onboarding/", address, follow=True)
    assert response.redirect_chain[-1][0] == "/billing/earnings/"
    assert "Payouts start once Razorpay has activated it." in text(response)
    with tenant_context(institution_a):
        account = PayoutAccount.objects.get(mentor=mentor)
    assert not account.ready and account.account_id.startswith("acc_")
    registered = razorpay_standin.accounts[account.account_id]["profile"]["addresses"]["registered"]
    assert (registered["state"], registered["postal_code"], registered["country"]) == (
        "KARNATAKA",
        "560038",
        "IN",
    )
    assert 'name="address-street1"' not in text(response)

    # Razorpay activates it and says so by webhook: the mentor's page shows it ready.
    body, headers = razorpay_standin.activate(account.account_id)
    assert post_webhook(HostClient(host_of(institution_a)), "razorpay", body, headers).status_code == 200
    page = text(client.get("/billing/earnings/"))
    assert "Ready" in page and "Set up payouts" not in page


# --- Receipts ----------------------------------------------------------------------------------------------


def test_a_receipt_is_for_its_learner_and_admins_only(scene, institution_a, institution_b, admin_client):
    mentor, learner = scene
    payment = pay(mentor, learner, slot(0))
    url = f"/billing/receipts/{payment.reference}/"

    mine = client_for(institution_a, "lee@a.example").get(url)
    assert mine.status_code == 200
    page = text(mine)
    assert "GBP 25.00" in page and payment.reference in page and "Mo Mentor" in page and "data-print" in page
    assert mine["Cache-Control"] == "private, no-store"
    assert admin_client.get(url).status_code == 200

    make_learner(institution_a, email="kim@a.example")
    assert client_for(institution_a, "kim@a.example").get(url).status_code == 404
    assert client_for(institution_a, "mo@a.example").get(url).status_code == 404
    make_learner(institution_b, email="lee@b.example")
    assert client_for(institution_b, "lee@b.example").get(url).status_code == 404
    assert client_for(institution_b, admin_of(institution_b).email).get(url).status_code == 404
    assert "/accounts/login/" in HostClient(host_of(institution_a)).get(url)["Location"]

    # A refund's receipt once the gateway has paid it back; unknown refunds are 404.
    with tenant_context(institution_a):
        refund = services.refund_manual(
            payment=payment, amount_minor=500, reason="Shorter session", admin=admin_of(institution_a)
        )
    refund_url = f"{url}?refund={refund.reference}"
    assert admin_client.get(refund_url).status_code == 404  # not refunded yet
    tasks.refund_submit.run(refund.pk)
    response = client_for(institution_a, "lee@a.example").get(refund_url)
    assert response.status_code == 200
    assert (
        "Refund receipt" in text(response)
        and "GBP 5.00" in text(response)
        and "Shorter session" in text(response)
    )
    assert admin_client.get(f"{url}?refund=ref_nope").status_code == 404
    page = text(admin_client.get(url))
    assert "Paid, less refunds" in page and "GBP 20.00" in page


def test_a_receipt_of_an_unpaid_payment_does_not_exist(scene, admin_client):
    mentor, learner = scene
    payment = start_payment(hold(mentor, learner, slot(0), minutes=30))
    assert payment.status == Payment.Status.PENDING
    assert admin_client.get(f"/billing/receipts/{payment.reference}/").status_code == 404


def test_the_receipt_email_carries_the_amount_and_a_link(scene, institution_a):
    mentor, learner = scene
    payment = pay(mentor, learner, slot(0))
    mail.outbox.clear()
    tasks.receipt_send.run(payment.pk)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["lee@a.example"]
    assert "GBP 25.00" in message.subject and "Mo Mentor" in message.subject
    assert "\n" not in message.subject
    assert "GBP 25.00" in message.body and payment.reference in message.body
    assert f"/billing/receipts/{payment.reference}/" in message.body
    html, mimetype = message.alternatives[0]
    assert (
        mimetype == "text/html" and "GBP 25.00" in html and f"/billing/receipts/{payment.reference}/" in html
    )

    refund = services.refund_manual(
        payment=payment, amount_minor=PRICE, reason="Mentor & learner agreed", admin=admin_of(institution_a)
    )
    tasks.refund_submit.run(refund.pk)
    tasks.receipt_send.run(payment.pk, refund.pk)
    message = mail.outbox[-1]
    assert "Refund of GBP 25.00" in message.subject
    assert "Mentor & learner agreed" in message.body  # plain text is not HTML-escaped
    assert f"?refund={refund.reference}" in message.body
