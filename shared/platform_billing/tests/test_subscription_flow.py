"""An institution's subscription driven by the platform's signed Stripe webhooks, through the
real `stripe` library against the stand-in: trial → subscribed → payment failed → past due →
suspended → paid → active; replays and old events change nothing; usage is reported."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from shared.core.testing import HostClient
from shared.platform_billing import services
from shared.platform_billing.models import Plan, PlatformWebhookEvent, Subscription, SubscriptionEvent
from shared.platform_billing.stripe_client import platform_stripe

SECRET_KEY = "sk_test_platform_flow"
WEBHOOK_SECRET = "whsec_platform_flow_secret"
St = Subscription.Status


@pytest.fixture
def platform(settings, stripe_standin):
    settings.PLATFORM_STRIPE = {
        "secret_key": SECRET_KEY,
        "webhook_secret": WEBHOOK_SECRET,
        "api_base": stripe_standin.api_base,
    }
    return stripe_standin


def deliver(standin, event: dict, *, secret: str = WEBHOOK_SECRET) -> dict:
    body, headers = standin.webhook(event, secret)
    client = HostClient(django_settings.PLATFORM_DOMAIN)
    response = client.post(
        "/billing/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=headers["Stripe-Signature"],
    )
    return {"status": response.status_code, **response.json()}


def subscription_of(institution) -> Subscription:
    return Subscription.objects.select_related("plan").get(institution=institution)


def subscribe(institution, platform, plan_code="starter", interval="month") -> tuple[dict, str]:
    url = services.checkout_start(
        institution=institution,
        plan=Plan.objects.get(code=plan_code),
        interval=interval,
        email="admin@a.example",
        success_url="http://a.localhost/plan/return/?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://a.localhost/plan/",
    )
    session_id = url.rstrip("/").split("/")[-1]
    assert url.startswith(platform.api_base)
    return platform.pay(session_id), session_id


def test_trial_subscribed_failed_past_due_suspended_paid_active(institution_a, platform):
    assert subscription_of(institution_a).status == St.TRIALING
    Subscription.objects.filter(institution=institution_a).update(
        trial_ends_at=timezone.now() + timedelta(days=1)
    )
    completed, _ = subscribe(institution_a, platform)
    answer = deliver(platform, completed)
    assert answer["status"] == 200 and answer["applied"]
    subscription = subscription_of(institution_a)
    assert (subscription.status, subscription.plan.code) == (St.ACTIVE, "starter")
    assert subscription.stripe_customer_id.startswith(
        "cus_"
    ) and subscription.stripe_subscription_id.startswith("sub_")

    # A replay changes nothing.
    again = deliver(platform, completed)
    assert again["replay"] is True
    assert PlatformWebhookEvent.objects.filter(event_id=completed["id"]).count() == 1

    failed = platform.invoice_event(subscription.stripe_subscription_id, "invoice.payment_failed")
    assert deliver(platform, failed)["applied"]
    subscription = subscription_of(institution_a)
    assert subscription.status == St.PAST_DUE and subscription.past_due_since is not None

    # The grace period runs out.
    Subscription.objects.filter(pk=subscription.pk).update(
        past_due_since=timezone.now() - timedelta(days=django_settings.PLATFORM_GRACE_DAYS + 1)
    )
    assert services.subscriptions_sweep()["suspended"] == 1
    assert subscription_of(institution_a).status == St.SUSPENDED

    paid = platform.invoice_event(subscription.stripe_subscription_id, "invoice.paid")
    assert deliver(platform, paid)["applied"]
    subscription = subscription_of(institution_a)
    assert subscription.status == St.ACTIVE and subscription.past_due_since is None

    # Replaying the failure (an old event, delivered again) changes nothing.
    assert deliver(platform, failed)["replay"] is True
    assert subscription_of(institution_a).status == St.ACTIVE
    kinds = list(
        SubscriptionEvent.objects.filter(subscription=subscription)
        .order_by("at", "pk")
        .values_list("to_status", flat=True)
    )
    assert kinds[-4:] == [St.ACTIVE, St.PAST_DUE, St.SUSPENDED, St.ACTIVE]


def test_events_out_of_order_end_in_the_state_of_the_newest(institution_a, platform):
    Subscription.objects.filter(institution=institution_a).update(
        trial_ends_at=timezone.now() + timedelta(days=1)
    )
    completed, _ = subscribe(institution_a, platform)
    deliver(platform, completed)
    subscription = subscription_of(institution_a)
    failed = platform.invoice_event(subscription.stripe_subscription_id, "invoice.payment_failed")
    paid = platform.invoice_event(subscription.stripe_subscription_id, "invoice.paid")
    assert paid["created"] > failed["created"]
    deliver(platform, paid)  # the newer arrives first
    deliver(platform, failed)  # the older one is stored, and does not override it
    assert subscription_of(institution_a).status == St.ACTIVE
    assert PlatformWebhookEvent.objects.get(event_id=failed["id"]).processed_at is not None


def test_a_plan_change_and_a_cancellation_from_stripe(institution_a, platform):
    Subscription.objects.filter(institution=institution_a).update(
        trial_ends_at=timezone.now() + timedelta(days=1)
    )
    completed, _ = subscribe(institution_a, platform, plan_code="starter")
    deliver(platform, completed)
    subscription = subscription_of(institution_a)
    services.plan_prices(Plan.objects.get(code="enterprise"))
    enterprise = Plan.objects.get(code="enterprise")
    upgraded = platform.subscription_event(
        subscription.stripe_subscription_id, price_id=enterprise.stripe_monthly_price_id, status="active"
    )
    deliver(platform, upgraded)
    assert subscription_of(institution_a).plan.code == "enterprise"
    deleted = platform.subscription_event(
        subscription.stripe_subscription_id, "customer.subscription.deleted"
    )
    deliver(platform, deleted)
    subscription = subscription_of(institution_a)
    assert subscription.status == St.CANCELLED
    assert subscription.delete_after - subscription.cancelled_at == timedelta(
        days=django_settings.PLATFORM_RETENTION_DAYS
    )


def test_a_bad_signature_is_refused_and_nothing_stored(institution_a, platform):
    completed, _ = subscribe(institution_a, platform)
    answer = deliver(platform, completed, secret="whsec_not_ours")
    assert answer["status"] == 400
    assert not PlatformWebhookEvent.objects.filter(event_id=completed["id"]).exists()
    assert subscription_of(institution_a).status == St.TRIALING


def test_the_platform_webhook_is_not_on_an_institutions_host(institution_a, platform):
    completed, _ = subscribe(institution_a, platform)
    body, headers = platform.webhook(completed, WEBHOOK_SECRET)
    client = HostClient(f"{institution_a.slug}.{django_settings.PLATFORM_DOMAIN}")
    response = client.post(
        "/billing/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=headers["Stripe-Signature"],
    )
    assert response.status_code == 400  # the institution's own (unconfigured) Stripe endpoint
    assert not PlatformWebhookEvent.objects.exists()


def test_returning_from_checkout_applies_it_at_once(institution_a, platform):
    # Subscribing during the trial: the plan is chosen now, the trial runs to its end at Stripe.
    _, session_id = subscribe(institution_a, platform, plan_code="starter", interval="year")
    subscription = services.checkout_confirm(institution=institution_a, session_id=session_id)
    assert (subscription.status, subscription.plan.code, subscription.interval) == (
        St.TRIALING,
        "starter",
        "year",
    )
    assert subscription.stripe_subscription_id
    # The sweep leaves a subscribed trial to Stripe.
    Subscription.objects.filter(pk=subscription.pk).update(trial_ends_at=timezone.now() - timedelta(hours=1))
    services.subscriptions_sweep()
    assert Subscription.objects.get(pk=subscription.pk).status == St.TRIALING


def test_usage_is_counted_and_reported_for_plans_billed_by_usage(institution_a, platform):
    Subscription.objects.filter(institution=institution_a).update(
        trial_ends_at=timezone.now() + timedelta(days=1)
    )
    completed, _ = subscribe(institution_a, platform, plan_code="enterprise")
    deliver(platform, completed)
    snapshot = services.usage_report(institution=institution_a)
    assert snapshot.reported_value == snapshot.active_learners
    services.usage_report(institution=institution_a)  # the same day again: one report
    customer = subscription_of(institution_a).stripe_customer_id
    events = [e for e in platform.meter_events(SECRET_KEY) if e["payload"]["stripe_customer_id"] == customer]
    assert len(events) == 1
    assert platform_stripe() is not None
