"""Webhooks over HTTP on the institution's host: verified, stored once, any order, isolated."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, host_of
from tenant_apps.billing.models import LedgerTransaction, Payment, Refund, WebhookEvent, pricing_policy
from tenant_apps.sessions.models import Booking
from tenant_apps.sessions.tests.factories import make_learner, make_mentor, next_weekday_at

from .helpers import balances, hold, pay_in_sandbox, post_webhook, sandbox_webhook, start_payment

PRICE = 2_500


@pytest.fixture
def held(institution_a):
    mentor = make_mentor(institution_a, email="hook@a.example", price_minor=PRICE)
    learner = make_learner(institution_a, email="hooked@a.example")
    with tenant_context(institution_a):
        booking = hold(mentor, learner, next_weekday_at(11, weeks_ahead=2))
        payment = start_payment(booking)
        record = pay_in_sandbox(payment)
    connection.set_schema_to_public()
    return booking, payment, record


def test_a_paid_webhook_delivered_three_times_credits_once(held, client_a):
    booking, _, record = held
    body, headers = sandbox_webhook_for(client_a, "checkout.paid", record)
    answers = [post_webhook(client_a, "sandbox", body, headers) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [answer.json()["replay"] for answer in answers] == [False, True, True]
    with tenant_context(client_a.institution):
        assert WebhookEvent.objects.count() == 1
        assert LedgerTransaction.objects.filter(kind="charge").count() == 1
        assert balances()["learner_funds"] == -PRICE
        assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CONFIRMED


def test_a_bad_signature_is_refused_and_nothing_is_stored(held, client_a):
    _, payment, record = held
    with tenant_context(client_a.institution):
        body, headers = sandbox_webhook("checkout.paid", record, secret="not-the-secret")
    assert post_webhook(client_a, "sandbox", body, headers).status_code == 400
    good_body, good_headers = sandbox_webhook_for(client_a, "checkout.paid", record)
    tampered = good_body.replace(str(PRICE).encode(), b"1")
    assert post_webhook(client_a, "sandbox", tampered, good_headers).status_code == 400
    assert post_webhook(client_a, "sandbox", good_body, {}).status_code == 400
    response = post_webhook(client_a, "stripe", good_body, good_headers)  # Stripe is not set up here
    assert response.status_code == 400
    assert "error" in response.json()
    with tenant_context(client_a.institution):
        assert WebhookEvent.objects.count() == 0
        assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING


def test_events_out_of_order_end_in_the_right_state(held, client_a):
    booking, payment, record = held
    paid_body, paid_headers = sandbox_webhook_for(client_a, "checkout.paid", record)
    failed_body, failed_headers = sandbox_webhook_for(client_a, "checkout.failed", record)
    expired_body, expired_headers = sandbox_webhook_for(client_a, "checkout.expired", record)
    # Paid first, then a stale "failed" and "expired" for the same checkout: still paid, confirmed.
    for body, headers in [
        (paid_body, paid_headers),
        (failed_body, failed_headers),
        (expired_body, expired_headers),
    ]:
        assert post_webhook(client_a, "sandbox", body, headers).status_code == 200
    with tenant_context(client_a.institution):
        assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED
        assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CONFIRMED


def test_a_refund_event_that_overtakes_the_refund_is_kept_and_applied_later(held, client_a):
    from tenant_apps.billing import services
    from tenant_apps.billing.webhooks import webhook_events_retry

    _, payment, record = held
    body, headers = sandbox_webhook_for(client_a, "checkout.paid", record)
    post_webhook(client_a, "sandbox", body, headers)
    early_body, early_headers = sandbox_webhook_for(
        client_a, "refund.succeeded", {"id": "sbx_re_early", "reference": "ref_not_yet", "amount": 500}
    )
    response = post_webhook(client_a, "sandbox", early_body, early_headers)
    assert response.status_code == 200 and response.json()["applied"] is False
    with tenant_context(client_a.institution):
        event = WebhookEvent.objects.get(type="refund.succeeded")
        assert event.processed_at is None and "No refund" in event.error
        refund = services.refund_create(
            payment=Payment.objects.get(pk=payment.pk),
            amount_minor=500,
            kind=Refund.Kind.MANUAL,
            reason="test",
        )
        Refund.objects.filter(pk=refund.pk).update(provider_refund_id="sbx_re_early")
        assert webhook_events_retry() == 1
        assert Refund.objects.get(pk=refund.pk).status == Refund.Status.SUCCEEDED
        assert balances().get("refunds_pending", 0) == 0


def test_a_webhook_for_institution_a_sent_to_b_changes_nothing_in_either(held, client_a, institution_b):
    booking, payment, record = held
    body, headers = sandbox_webhook_for(client_a, "checkout.paid", record)
    client_b = HostClient(host_of(institution_b))
    with tenant_context(institution_b):
        pricing_policy()  # B uses the sandbox too, with its own secret
    assert post_webhook(client_b, "sandbox", body, headers).status_code == 400
    with tenant_context(institution_b):
        assert WebhookEvent.objects.count() == 0
    with tenant_context(client_a.institution):
        assert WebhookEvent.objects.count() == 0
        assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
        assert Booking.objects.get(pk=booking.pk).status == Booking.Status.HELD


def test_the_same_event_id_in_two_institutions_is_two_events(held, client_a, institution_b):
    """Event ids are unique per institution's schema: B storing one never blocks A's."""
    _, _, record = held
    body, headers = sandbox_webhook_for(client_a, "checkout.paid", record)
    assert post_webhook(client_a, "sandbox", body, headers).status_code == 200
    client_b = HostClient(host_of(institution_b))
    with tenant_context(institution_b):
        from .helpers import sandbox

        secret = sandbox().credentials.webhook_secret
    from tenant_apps.billing.gateways.sandbox import SIGNATURE_HEADER, sign

    response = post_webhook(client_b, "sandbox", body, {SIGNATURE_HEADER: sign(body, secret)})
    assert response.status_code == 200 and response.json()["applied"] is False  # no such payment in B
    with tenant_context(institution_b):
        assert not Payment.objects.exists()


def sandbox_webhook_for(client: HostClient, event_type: str, data: dict) -> tuple[bytes, dict]:
    with tenant_context(client.institution):
        return sandbox_webhook(event_type, data)


@pytest.fixture
def client_a(institution_a) -> HostClient:
    client = HostClient(host_of(institution_a))
    client.institution = institution_a
    return client
