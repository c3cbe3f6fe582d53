"""PlatformStripe through the real stripe library against the local Stripe stand-in.

No database: every test talks HTTP to the stand-in (and localstripe behind it) with an API key of
its own, so each test has a Stripe account to itself, and every webhook is signed and verified for
real. Settings come from pytest-django's `settings` fixture.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
import stripe

from shared.platform_billing.stripe_client import (
    METER_EVENT_NAME,
    PlanPrices,
    PlatformStripe,
    PlatformStripeError,
    SignatureError,
    platform_stripe,
)
from tests.standins.stripe_standin import StripeStandin, stripe_signature

WEBHOOK_SECRET = "whsec_platform_test_endpoint"
SUCCESS_URL = "https://peerlearn.test/billing/done?session={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://peerlearn.test/billing"


@pytest.fixture
def secret_key() -> str:
    return f"sk_test_{secrets.token_hex(12)}"


@pytest.fixture
def platform(settings, stripe_standin: StripeStandin, secret_key: str) -> PlatformStripe:
    settings.PLATFORM_STRIPE = {
        "secret_key": secret_key,
        "webhook_secret": WEBHOOK_SECRET,
        "api_base": stripe_standin.api_base,
    }
    return platform_stripe()


def growth_prices(platform: PlatformStripe, **overrides) -> PlanPrices:
    values = {
        "plan_code": "growth",
        "name": "PeerLearn Growth",
        "currency": "USD",
        "monthly_minor": 4900,
        "yearly_minor": 49000,
        "usage_unit_minor": 25,
        **overrides,
    }
    return platform.ensure_plan_prices(**values)


def start_checkout(platform: PlatformStripe, prices: PlanPrices, **overrides):
    values = {
        "institution_ref": "alpha",
        "customer_id": "",
        "customer_email": "admin@alpha.example.edu",
        "price_id": prices.monthly_price_id,
        "usage_price_id": prices.usage_price_id,
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        "trial_end": None,
        **overrides,
    }
    return platform.checkout(**values)


def signed(event: dict, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, dict]:
    body = json.dumps(event).encode()
    return body, {"Stripe-Signature": stripe_signature(body, secret, timestamp)}


def subscribed(platform: PlatformStripe, standin: StripeStandin, prices: PlanPrices, **overrides) -> dict:
    """A paid subscription Checkout; returns the checkout.session.completed event."""
    link = start_checkout(platform, prices, **overrides)
    return standin.pay(link.session_id)


# -- configuration --------------------------------------------------------------------------------


def test_without_a_secret_key_subscriptions_are_not_configured(settings):
    settings.PLATFORM_STRIPE = {"secret_key": "", "webhook_secret": "", "api_base": ""}
    with pytest.raises(PlatformStripeError) as caught:
        platform_stripe()
    assert caught.value.message == "Online subscriptions are not configured."
    assert caught.value.retryable is False


def test_the_key_stays_out_of_the_clients_repr(platform, secret_key):
    assert secret_key not in repr(platform)
    assert WEBHOOK_SECRET not in repr(platform)


# -- plans ------------------------------------------------------------------------------------------


def test_plan_prices_are_made_once_and_found_again_by_lookup_key(platform, stripe_standin, secret_key):
    first = growth_prices(platform)
    second = growth_prices(platform)

    assert first == second
    assert first.usage_price_id
    assert len(stripe_standin.prices(secret_key)) == 3
    product = stripe_standin.product(secret_key, "peerlearn-growth")
    assert product["name"] == "PeerLearn Growth"

    prices = {price["id"]: price for price in stripe_standin.prices(secret_key)}
    monthly, yearly, usage = (
        prices[i] for i in (first.monthly_price_id, first.yearly_price_id, first.usage_price_id)
    )
    assert (monthly["lookup_key"], monthly["unit_amount"], monthly["currency"]) == (
        "growth-monthly",
        4900,
        "usd",
    )
    assert monthly["recurring"]["interval"] == "month"
    assert monthly["recurring"]["usage_type"] == "licensed"
    assert (yearly["lookup_key"], yearly["unit_amount"], yearly["recurring"]["interval"]) == (
        "growth-yearly",
        49000,
        "year",
    )
    assert usage["lookup_key"] == "growth-usage"
    assert usage["unit_amount"] == 25
    assert usage["recurring"]["usage_type"] == "metered"
    assert usage["recurring"]["meter"].startswith("mtr_")
    assert all(price["product"] == "peerlearn-growth" for price in prices.values())


def test_a_plan_without_usage_billing_has_no_usage_price(platform, stripe_standin, secret_key):
    prices = platform.ensure_plan_prices(
        plan_code="starter",
        name="PeerLearn Starter",
        currency="EUR",
        monthly_minor=1900,
        yearly_minor=19000,
        usage_unit_minor=0,
    )
    assert prices.usage_price_id == ""
    stored = stripe_standin.prices(secret_key)
    assert {price["lookup_key"] for price in stored} == {"starter-monthly", "starter-yearly"}
    assert {price["currency"] for price in stored} == {"eur"}


def test_a_changed_amount_gets_a_new_price_that_takes_the_lookup_key(platform, stripe_standin, secret_key):
    before = growth_prices(platform)
    after = growth_prices(platform, monthly_minor=5900, name="PeerLearn Growth (2027)")

    assert after.monthly_price_id != before.monthly_price_id
    assert after.yearly_price_id == before.yearly_price_id
    assert after.usage_price_id == before.usage_price_id
    prices = {price["id"]: price for price in stripe_standin.prices(secret_key)}
    assert prices[after.monthly_price_id]["lookup_key"] == "growth-monthly"
    assert prices[after.monthly_price_id]["unit_amount"] == 5900
    assert prices[before.monthly_price_id]["lookup_key"] is None  # subscriptions on it keep it
    assert stripe_standin.product(secret_key, "peerlearn-growth")["name"] == "PeerLearn Growth (2027)"
    assert growth_prices(platform, monthly_minor=5900, name="PeerLearn Growth (2027)") == after


def test_plans_with_usage_share_one_meter(platform, stripe_standin, secret_key):
    growth = growth_prices(platform)
    scale = growth_prices(platform, plan_code="scale", name="PeerLearn Scale", usage_unit_minor=15)
    prices = {price["id"]: price for price in stripe_standin.prices(secret_key)}
    assert (
        prices[growth.usage_price_id]["recurring"]["meter"]
        == prices[scale.usage_price_id]["recurring"]["meter"]
    )


# -- checkout ---------------------------------------------------------------------------------------


def test_checkout_is_a_subscription_session_with_the_price_the_usage_price_and_the_institution(
    platform, stripe_standin
):
    prices = growth_prices(platform)
    link = start_checkout(platform, prices)

    assert link.session_id.startswith("cs_test_")
    assert link.url.startswith(stripe_standin.api_base)
    session = stripe_standin.session(link.session_id)
    assert session["mode"] == "subscription"
    assert session["metadata"] == {"institution": "alpha"}
    assert session["client_reference_id"] == "alpha"
    assert session["customer_email"] == "admin@alpha.example.edu"
    assert session["customer"] is None
    assert session["success_url"] == SUCCESS_URL
    assert session["amount_total"] == 4900
    items = [
        (item["price"]["id"], item["quantity"]) for item in stripe_standin.session_line_items(link.session_id)
    ]
    assert items == [(prices.monthly_price_id, 1), (prices.usage_price_id, None)]
    data = stripe_standin.session_subscription_data(link.session_id)
    assert data["metadata"] == {"institution": "alpha"}
    assert data["trial_end"] is None
    assert data["billing_mode"] == "flexible"


def test_checkout_without_usage_has_the_price_alone(platform, stripe_standin):
    prices = growth_prices(platform)
    link = start_checkout(platform, prices, usage_price_id="")
    items = stripe_standin.session_line_items(link.session_id)
    assert [(item["price"]["id"], item["quantity"]) for item in items] == [(prices.monthly_price_id, 1)]


def test_checkout_carries_a_trial_far_enough_ahead_and_an_existing_customer(platform, stripe_standin):
    prices = growth_prices(platform)
    customer_id = subscribed(platform, stripe_standin, prices)["data"]["object"]["customer"]
    trial_end = datetime.now(UTC) + timedelta(days=10)

    link = start_checkout(platform, prices, customer_id=customer_id, trial_end=trial_end)

    session = stripe_standin.session(link.session_id)
    assert session["customer"] == customer_id
    assert session["customer_email"] is None
    assert session["amount_total"] == 0  # nothing is due until the trial ends
    assert stripe_standin.session_subscription_data(link.session_id)["trial_end"] == int(
        trial_end.timestamp()
    )


@pytest.mark.parametrize("ahead", [timedelta(hours=47), timedelta(minutes=-5)])
def test_a_trial_checkout_cannot_honour_is_left_out(platform, stripe_standin, ahead):
    # Checkout refuses a trial_end less than 48 hours ahead: the subscription starts at once instead.
    prices = growth_prices(platform)
    link = start_checkout(platform, prices, trial_end=datetime.now(UTC) + ahead)
    assert stripe_standin.session_subscription_data(link.session_id)["trial_end"] is None


def test_an_unknown_customer_is_refused_readably(platform):
    prices = growth_prices(platform)
    with pytest.raises(PlatformStripeError) as caught:
        start_checkout(platform, prices, customer_id="cus_nobody")
    assert "No such customer" in caught.value.message
    assert caught.value.retryable is False


# -- what Stripe sends back ---------------------------------------------------------------------------


def test_paying_the_checkout_starts_an_active_subscription_whose_event_names_the_institution(
    platform, stripe_standin
):
    prices = growth_prices(platform)
    event = subscribed(platform, stripe_standin, prices)

    parsed = platform.parse_webhook(body=signed(event)[0], headers=signed(event)[1])

    assert parsed.type == "checkout.session.completed"
    assert parsed.event_id == event["id"]
    assert parsed.institution_ref == "alpha"
    assert parsed.customer_id.startswith("cus_")
    assert parsed.subscription_id.startswith("sub_")
    assert parsed.amount_minor == 4900
    assert parsed.currency == "USD"
    assert parsed.created == datetime.fromtimestamp(event["created"], tz=UTC)
    assert parsed.created.tzinfo is not None
    assert parsed.payload == event

    subscription = platform.subscription(parsed.subscription_id)
    assert subscription["status"] == "active"
    assert subscription["customer"] == parsed.customer_id
    assert subscription["metadata"] == {"institution": "alpha"}
    assert [item["price"]["id"] for item in subscription["items"]["data"]] == [
        prices.monthly_price_id,
        prices.usage_price_id,
    ]
    json.dumps(subscription)  # storable as it is


def test_a_trial_checkout_pays_nothing_and_the_subscription_trials(platform, stripe_standin):
    prices = growth_prices(platform)
    trial_end = datetime.now(UTC).replace(microsecond=0) + timedelta(days=14)
    event = subscribed(platform, stripe_standin, prices, trial_end=trial_end)

    assert event["data"]["object"]["payment_status"] == "no_payment_required"
    subscription_id = event["data"]["object"]["subscription"]
    created = stripe_standin.subscription_event(subscription_id, "customer.subscription.created")
    parsed = platform.parse_webhook(body=signed(created)[0], headers=signed(created)[1])

    assert parsed.subscription_status == "trialing"
    assert parsed.subscription_id == subscription_id
    assert parsed.institution_ref == "alpha"
    assert parsed.current_period_end == trial_end
    assert parsed.price_ids == (prices.monthly_price_id, prices.usage_price_id)


def test_invoice_events_carry_the_amount_the_subscription_and_the_institution(
    platform, stripe_standin, secret_key
):
    prices = growth_prices(platform)
    session = subscribed(platform, stripe_standin, prices)["data"]["object"]
    subscription_id, customer_id = session["subscription"], session["customer"]
    platform.report_usage(customer_id=customer_id, value=12, identifier="alpha-day-1", at=datetime.now(UTC))

    paid = stripe_standin.invoice_event(subscription_id, "invoice.paid")
    parsed = platform.parse_webhook(body=signed(paid)[0], headers=signed(paid)[1])
    assert parsed.type == "invoice.paid"
    assert parsed.subscription_id == subscription_id
    assert parsed.customer_id == customer_id
    assert parsed.institution_ref == "alpha"
    assert parsed.amount_minor == 4900 + 12 * 25  # the month ahead and the usage of the month behind
    assert parsed.currency == "USD"

    failed = stripe_standin.invoice_event(subscription_id, "invoice.payment_failed")
    parsed_failed = platform.parse_webhook(body=signed(failed)[0], headers=signed(failed)[1])
    assert parsed_failed.type == "invoice.payment_failed"
    assert parsed_failed.amount_minor == 4900  # amount_due: no usage reported in the new period
    assert parsed_failed.subscription_id == subscription_id
    assert parsed_failed.institution_ref == "alpha"
    assert platform.subscription(subscription_id)["status"] == "past_due"

    retried = stripe_standin.invoice_event(subscription_id, "invoice.paid")
    assert retried["data"]["object"]["id"] == failed["data"]["object"]["id"]
    assert platform.parse_webhook(body=signed(retried)[0], headers=signed(retried)[1]).amount_minor == 4900
    assert platform.subscription(subscription_id)["status"] == "active"


def test_an_invoice_in_an_older_api_versions_shape_is_read_too(platform, stripe_standin):
    invoice = {
        "id": "in_legacy",
        "object": "invoice",
        "customer": "cus_legacy",
        "subscription": "sub_legacy",
        "subscription_details": {"metadata": {"institution": "beta"}},
        "status": "open",
        "amount_due": 4900,
        "amount_paid": 0,
        "currency": "inr",
    }
    event = stripe_standin.event("invoice.payment_failed", invoice)
    parsed = platform.parse_webhook(body=signed(event)[0], headers=signed(event)[1])
    assert (parsed.subscription_id, parsed.customer_id, parsed.institution_ref) == (
        "sub_legacy",
        "cus_legacy",
        "beta",
    )
    assert (parsed.amount_minor, parsed.currency) == (4900, "INR")


def test_subscription_updates_carry_status_and_prices_and_deletion_cancels(platform, stripe_standin):
    growth = growth_prices(platform)
    scale = growth_prices(platform, plan_code="scale", name="PeerLearn Scale", monthly_minor=9900)
    subscription_id = subscribed(platform, stripe_standin, growth)["data"]["object"]["subscription"]

    changed = stripe_standin.subscription_event(subscription_id, price_id=scale.monthly_price_id)
    parsed = platform.parse_webhook(body=signed(changed)[0], headers=signed(changed)[1])
    assert parsed.type == "customer.subscription.updated"
    assert parsed.subscription_status == "active"
    assert parsed.price_ids == (scale.monthly_price_id, growth.usage_price_id)
    assert parsed.institution_ref == "alpha"
    assert parsed.customer_id.startswith("cus_")
    assert parsed.current_period_end is not None
    assert parsed.current_period_end > datetime.now(UTC) + timedelta(days=27)

    overdue = stripe_standin.subscription_event(subscription_id, status="past_due")
    assert platform.parse_webhook(
        body=signed(overdue)[0], headers=signed(overdue)[1]
    ).subscription_status == ("past_due")

    deleted = stripe_standin.subscription_event(subscription_id, "customer.subscription.deleted")
    parsed_deleted = platform.parse_webhook(body=signed(deleted)[0], headers=signed(deleted)[1])
    assert parsed_deleted.type == "customer.subscription.deleted"
    assert parsed_deleted.subscription_status == "canceled"
    assert parsed_deleted.subscription_id == subscription_id
    assert platform.subscription(subscription_id)["status"] == "canceled"


def test_a_yearly_plans_period_end_is_its_yearly_items_not_the_monthly_usage(platform, stripe_standin):
    prices = growth_prices(platform)
    event = subscribed(platform, stripe_standin, prices, price_id=prices.yearly_price_id)
    updated = stripe_standin.subscription_event(event["data"]["object"]["subscription"])

    parsed = platform.parse_webhook(body=signed(updated)[0], headers=signed(updated)[1])

    assert parsed.price_ids == (prices.yearly_price_id, prices.usage_price_id)
    assert parsed.current_period_end > datetime.now(UTC) + timedelta(days=360)


def test_events_are_created_in_order_unless_a_time_is_given(platform, stripe_standin):
    prices = growth_prices(platform)
    subscription_id = subscribed(platform, stripe_standin, prices)["data"]["object"]["subscription"]
    first = stripe_standin.subscription_event(subscription_id)
    second = stripe_standin.subscription_event(subscription_id)
    assert second["created"] > first["created"]

    earlier = stripe_standin.invoice_event(subscription_id, created=first["created"] - 60)
    parsed = platform.parse_webhook(body=signed(earlier)[0], headers=signed(earlier)[1])
    assert parsed.created == datetime.fromtimestamp(first["created"] - 60, tz=UTC)


def test_an_event_about_something_else_is_still_read(platform, stripe_standin):
    event = stripe_standin.event(
        "customer.updated", {"id": "cus_42", "object": "customer", "metadata": {"institution": "gamma"}}
    )
    parsed = platform.parse_webhook(body=signed(event)[0], headers=signed(event)[1])
    assert (parsed.type, parsed.customer_id, parsed.institution_ref) == (
        "customer.updated",
        "cus_42",
        "gamma",
    )
    assert (parsed.subscription_id, parsed.subscription_status, parsed.amount_minor) == ("", "", None)


def test_the_stand_in_controls_answer_over_http_for_another_process(platform, stripe_standin):
    def control(path: str) -> dict:
        request = urllib.request.Request(
            f"{stripe_standin.api_base}/_standin/{path}", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    link = start_checkout(platform, growth_prices(platform))
    completed = control(f"sessions/{link.session_id}/pay")
    subscription_id = completed["data"]["object"]["subscription"]
    failed = control(f"subscriptions/{subscription_id}/invoice?type=invoice.payment_failed")
    deleted = control(f"subscriptions/{subscription_id}/event?type=customer.subscription.deleted")

    parsed = [
        platform.parse_webhook(body=signed(e)[0], headers=signed(e)[1]) for e in (completed, failed, deleted)
    ]
    assert [p.type for p in parsed] == [
        "checkout.session.completed",
        "invoice.payment_failed",
        "customer.subscription.deleted",
    ]
    assert {p.subscription_id for p in parsed} == {subscription_id}
    assert parsed[2].subscription_status == "canceled"
    assert parsed[0].created < parsed[1].created < parsed[2].created


# -- signatures ---------------------------------------------------------------------------------------


def test_a_signature_from_a_wsgi_environ_is_accepted(platform, stripe_standin):
    event = stripe_standin.event("customer.updated", {"id": "cus_1", "object": "customer", "metadata": {}})
    body, headers = signed(event)
    parsed = platform.parse_webhook(body=body, headers={"HTTP_STRIPE_SIGNATURE": headers["Stripe-Signature"]})
    assert parsed.event_id == event["id"]


def test_webhooks_that_do_not_verify_raise_signature_error(platform, stripe_standin):
    event = stripe_standin.event("customer.updated", {"id": "cus_1", "object": "customer", "metadata": {}})
    body, headers = signed(event)
    tampered = body.replace(b"cus_1", b"cus_2")
    wrong_secret = signed(event, secret="whsec_someone_else")[1]
    too_old = signed(event, timestamp=int(time.time()) - 3600)[1]
    not_json = b"not json"

    cases = [
        (tampered, headers),
        (body, wrong_secret),
        (body, {}),
        (body, {"Stripe-Signature": ""}),
        (body, {"Stripe-Signature": "t=1,v1=abc"}),
        (body, too_old),
        (not_json, {"Stripe-Signature": stripe_signature(not_json, WEBHOOK_SECRET)}),
        (b"[1]", {"Stripe-Signature": stripe_signature(b"[1]", WEBHOOK_SECRET)}),
    ]
    for case_body, case_headers in cases:
        with pytest.raises(SignatureError):
            platform.parse_webhook(body=case_body, headers=case_headers)


def test_without_a_webhook_secret_nothing_verifies(settings, stripe_standin, secret_key):
    settings.PLATFORM_STRIPE = {
        "secret_key": secret_key,
        "webhook_secret": "",
        "api_base": stripe_standin.api_base,
    }
    event = stripe_standin.event("customer.updated", {"id": "cus_1", "object": "customer", "metadata": {}})
    body, headers = signed(event, secret="")
    with pytest.raises(SignatureError):
        platform_stripe().parse_webhook(body=body, headers=headers)


# -- the portal -------------------------------------------------------------------------------------


def test_the_portal_is_a_url_for_the_customer(platform, stripe_standin):
    prices = growth_prices(platform)
    customer_id = subscribed(platform, stripe_standin, prices)["data"]["object"]["customer"]

    url = platform.portal(customer_id=customer_id, return_url="https://alpha.peerlearn.test/admin/billing")

    assert url.startswith(f"{stripe_standin.api_base}/_standin/portal/bps_")
    with pytest.raises(PlatformStripeError) as caught:
        platform.portal(customer_id="cus_nobody", return_url="https://alpha.peerlearn.test/admin/billing")
    assert "No such customer" in caught.value.message


# -- usage --------------------------------------------------------------------------------------------


def test_usage_is_a_meter_event_stored_once_per_identifier(platform, stripe_standin, secret_key):
    prices = growth_prices(platform)
    customer_id = subscribed(platform, stripe_standin, prices)["data"]["object"]["customer"]
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

    platform.report_usage(customer_id=customer_id, value=12, identifier="alpha-2026-11-02", at=at)
    platform.report_usage(customer_id=customer_id, value=12, identifier="alpha-2026-11-02", at=at)

    events = stripe_standin.meter_events(secret_key)
    assert len(events) == 1
    assert events[0]["event_name"] == METER_EVENT_NAME
    assert events[0]["identifier"] == "alpha-2026-11-02"
    assert events[0]["payload"] == {"stripe_customer_id": customer_id, "value": "12"}
    assert events[0]["timestamp"] == int(at.timestamp())

    platform.report_usage(
        customer_id=customer_id, value=13, identifier="alpha-2026-11-03", at=datetime.now(UTC)
    )
    assert [event["payload"]["value"] for event in stripe_standin.meter_events(secret_key)] == ["12", "13"]


def test_the_stand_in_refuses_a_repeated_identifier_as_stripe_does(platform, stripe_standin, secret_key):
    growth_prices(platform)  # the meter
    client = stripe.StripeClient(secret_key, base_addresses={"api": stripe_standin.api_base})
    params = {"event_name": METER_EVENT_NAME, "payload": {"stripe_customer_id": "cus_x", "value": "3"}}
    client.v1.billing.meter_events.create(params={**params, "identifier": "once"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.billing.meter_events.create(params={**params, "identifier": "once"})
    assert caught.value.http_status == 400
    assert caught.value.code == "duplicate_meter_event"


# -- errors -----------------------------------------------------------------------------------------


def test_a_refused_key_is_an_error_that_does_not_show_the_key(settings, stripe_standin):
    key = f"not-a-key-{secrets.token_hex(8)}"
    settings.PLATFORM_STRIPE = {
        "secret_key": key,
        "webhook_secret": WEBHOOK_SECRET,
        "api_base": stripe_standin.api_base,
    }
    with pytest.raises(PlatformStripeError) as caught:
        growth_prices(platform_stripe())
    error = caught.value
    assert key not in error.message and key[-4:] not in error.message and key[:8] not in error.message
    assert key not in str(error)
    assert "API key" in error.message
    assert error.retryable is False


def test_an_unreachable_stripe_is_a_retryable_error(settings, secret_key):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.PLATFORM_STRIPE = {
        "secret_key": secret_key,
        "webhook_secret": WEBHOOK_SECRET,
        "api_base": f"http://127.0.0.1:{port}",
    }
    with pytest.raises(PlatformStripeError) as caught:
        platform_stripe().subscription("sub_anything")
    assert caught.value.retryable is True
    assert secret_key not in caught.value.message
    assert "try again" in caught.value.message
