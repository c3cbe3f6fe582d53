"""Institutions' subscriptions: the trial, Stripe checkout and portal, the status machine that
the platform's Stripe webhooks drive, dunning, suspension, cancellation and deletion, usage.

    trialing ──checkout paid──▶ active ◀──invoice.paid── past_due ──grace over──▶ suspended
        │                         │  └──invoice.payment_failed──┘                   │
        └──trial over──▶ suspended└──subscription deleted──▶ cancelled ──retention──▶ deleted
                                        (suspended ──invoice.paid──▶ active)

Every change is recorded as a SubscriptionEvent. An event from Stripe never overrides a newer one
(`Subscription.status_event_at`), so events may arrive in any order; each is applied once
(PlatformWebhookEvent by its id).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from shared.core.errors import ApplicationError
from tenants.models import Institution

from .limits import month_start, usage_all
from .models import Plan, PlatformWebhookEvent, Subscription, SubscriptionEvent, UsageSnapshot

logger = logging.getLogger(__name__)

St = Subscription.Status

PLANS = (
    {
        "code": "starter",
        "name": "Starter",
        "description": "For a first mentoring programme.",
        "monthly_price_minor": 4_900,
        "yearly_price_minor": 49_000,
        "max_active_mentors": 10,
        "max_active_learners": 100,
        "max_sessions_per_month": 200,
        "max_storage_mb": 1_024,
        "position": 1,
    },
    {
        "code": "growth",
        "name": "Growth",
        "description": "For a programme across departments, with your own domain and styling.",
        "monthly_price_minor": 19_900,
        "yearly_price_minor": 199_000,
        "max_active_mentors": 100,
        "max_active_learners": 2_000,
        "max_sessions_per_month": 5_000,
        "max_storage_mb": 20_480,
        "custom_domain": True,
        "custom_css": True,
        "sms_reminders": True,
        "position": 2,
    },
    {
        "code": "enterprise",
        "name": "Enterprise",
        "description": "Unlimited, white-label, billed by active learners.",
        "monthly_price_minor": 99_900,
        "yearly_price_minor": 999_000,
        "usage_unit_minor": 100,
        "custom_domain": True,
        "custom_css": True,
        "sms_reminders": True,
        "remove_branding": True,
        "position": 3,
    },
)

# Stripe's subscription statuses → ours (None: no change, e.g. an incomplete first payment).
STRIPE_STATUSES = {
    "trialing": St.TRIALING,
    "active": St.ACTIVE,
    "past_due": St.PAST_DUE,
    "unpaid": St.SUSPENDED,
    "paused": St.SUSPENDED,
    "canceled": St.CANCELLED,
    "incomplete": None,
    "incomplete_expired": None,
}


def plans_seed() -> None:
    """The three plans (idempotent: existing plans keep what staff changed)."""
    # One query when they all exist, as they do after the first sign-up (every sign-up calls this).
    existing = set(
        Plan.objects.filter(code__in=[spec["code"] for spec in PLANS]).values_list("code", flat=True)
    )
    for spec in PLANS:
        if spec["code"] not in existing:
            Plan.objects.get_or_create(
                code=spec["code"], defaults={k: v for k, v in spec.items() if k != "code"}
            )


def _record(
    subscription: Subscription, kind: str, from_status: str, note: str = "", event_id: str = ""
) -> None:
    SubscriptionEvent.objects.create(
        subscription=subscription,
        kind=kind,
        from_status=from_status,
        to_status=subscription.status,
        plan_code=subscription.plan.code,
        note=note[:300],
        stripe_event_id=event_id,
    )


def _move(subscription: Subscription, status: str, *, kind: str, note: str = "", event_id: str = "") -> None:
    """Set the status (with its dates) and record it; no-op records nothing."""
    before = subscription.status
    now = timezone.now()
    subscription.status = status
    if status == St.PAST_DUE and subscription.past_due_since is None:
        subscription.past_due_since = now
    if status in (St.ACTIVE, St.TRIALING):
        subscription.past_due_since = None
        subscription.suspended_at = None
    if status == St.SUSPENDED and subscription.suspended_at is None:
        subscription.suspended_at = now
    if status == St.CANCELLED and subscription.cancelled_at is None:
        subscription.cancelled_at = now
        subscription.delete_after = now + timedelta(days=settings.PLATFORM_RETENTION_DAYS)
    if status != St.CANCELLED:
        subscription.cancelled_at = subscription.delete_after = None
    subscription.save()
    if before != status or kind not in ("status",):
        _record(subscription, kind, before, note, event_id)


def trial_start(*, institution: Institution) -> Subscription:
    """Every new institution starts a trial of the default plan."""
    plans_seed()
    plan = Plan.objects.get(code=settings.PLATFORM_DEFAULT_PLAN)
    subscription, created = Subscription.objects.get_or_create(
        institution=institution,
        defaults={
            "plan": plan,
            "status": St.TRIALING,
            "trial_ends_at": timezone.now() + timedelta(days=settings.PLATFORM_TRIAL_DAYS),
        },
    )
    if created:
        _record(subscription, "trial_started", "", f"{settings.PLATFORM_TRIAL_DAYS}-day trial of {plan.name}")
    return subscription


# --- Checkout and the customer portal ------------------------------------------------------------


def _stripe():
    from .stripe_client import PlatformStripeError, platform_stripe

    try:
        return platform_stripe()
    except PlatformStripeError as error:
        raise ApplicationError(error.message, code="billing_unavailable", status=503) from None


def plan_prices(plan: Plan):
    """The plan's current Stripe prices (made when missing or when its amounts changed)."""
    from .stripe_client import PlatformStripeError

    try:  # every time: staff may have changed the prices (found again by lookup key, or made anew)
        prices = _stripe().ensure_plan_prices(
            plan_code=plan.code,
            name=f"PeerLearn {plan.name}",
            currency=plan.currency,
            monthly_minor=plan.monthly_price_minor,
            yearly_minor=plan.yearly_price_minor,
            usage_unit_minor=plan.usage_unit_minor,
        )
    except PlatformStripeError as error:
        raise ApplicationError(error.message, code="billing_unavailable", status=502) from None
    Plan.objects.filter(pk=plan.pk).update(
        stripe_monthly_price_id=prices.monthly_price_id,
        stripe_yearly_price_id=prices.yearly_price_id,
        stripe_usage_price_id=prices.usage_price_id,
    )
    return prices.monthly_price_id, prices.yearly_price_id, prices.usage_price_id


def checkout_start(
    *, institution: Institution, plan: Plan, interval: str, email: str, success_url: str, cancel_url: str
) -> str:
    """A Stripe Checkout (subscription mode) for the plan; returns where to send the admin."""
    from .stripe_client import PlatformStripeError

    if not plan.is_public:
        raise ApplicationError("That plan is not offered.", status=404)
    if interval not in Subscription.Interval.values:
        raise ApplicationError(
            "Choose monthly or yearly billing.", fields={"interval": ["Monthly or yearly."]}
        )
    subscription = Subscription.objects.get(institution=institution)
    if subscription.status == St.CANCELLED:
        raise ApplicationError("This institution's subscription was cancelled.", status=409)
    monthly, yearly, usage = plan_prices(plan)
    trial_end = subscription.trial_ends_at if subscription.status == St.TRIALING else None
    try:
        link = _stripe().checkout(
            institution_ref=institution.schema_name,
            customer_id=subscription.stripe_customer_id,
            customer_email=email,
            price_id=monthly if interval == Subscription.Interval.MONTH else yearly,
            usage_price_id=usage,
            success_url=success_url,
            cancel_url=cancel_url,
            trial_end=trial_end if trial_end and trial_end > timezone.now() + timedelta(days=2) else None,
        )
    except PlatformStripeError as error:
        raise ApplicationError(error.message, code="billing_unavailable", status=502) from None
    _record(subscription, "checkout_started", subscription.status, f"{plan.name}, {interval}ly")
    return link.url


def portal_url(*, institution: Institution, return_url: str) -> str:
    from .stripe_client import PlatformStripeError

    subscription = Subscription.objects.get(institution=institution)
    if not subscription.stripe_customer_id:
        raise ApplicationError("Subscribe to a plan first; then you can manage payment details.", status=409)
    try:
        return _stripe().portal(customer_id=subscription.stripe_customer_id, return_url=return_url)
    except PlatformStripeError as error:
        raise ApplicationError(error.message, code="billing_unavailable", status=502) from None


# --- Webhooks ----------------------------------------------------------------------------------------


def webhook_receive(*, body: bytes, headers) -> tuple[PlatformWebhookEvent, bool]:
    """Verify, store once, apply. Returns (event, replay). Invalid signature: ApplicationError 400."""
    from .stripe_client import SignatureError

    try:
        parsed = _stripe().parse_webhook(body=body, headers=headers)
    except SignatureError:
        raise ApplicationError(
            "The webhook signature is not valid.", code="bad_signature", status=400
        ) from None
    try:
        with transaction.atomic():
            stored = PlatformWebhookEvent.objects.create(
                event_id=parsed.event_id,
                type=parsed.type[:80],
                payload=parsed.payload,
                stripe_created_at=parsed.created,
            )
    except IntegrityError:
        stored = PlatformWebhookEvent.objects.get(event_id=parsed.event_id)
        if stored.processed_at is not None:
            return stored, True
    try:
        with transaction.atomic():
            event_apply(parsed)
            PlatformWebhookEvent.objects.filter(pk=stored.pk).update(processed_at=timezone.now(), error="")
    except ApplicationError as error:
        PlatformWebhookEvent.objects.filter(pk=stored.pk).update(error=error.message[:300])
    stored.refresh_from_db()
    return stored, False


def _subscription_for(parsed) -> Subscription | None:
    found = None
    if parsed.institution_ref:
        found = Subscription.objects.filter(institution__schema_name=parsed.institution_ref).first()
    if found is None and parsed.subscription_id:
        found = Subscription.objects.filter(stripe_subscription_id=parsed.subscription_id).first()
    if found is None and parsed.customer_id:
        found = Subscription.objects.filter(stripe_customer_id=parsed.customer_id).first()
    return found


def _plan_for_prices(price_ids) -> Plan | None:
    for price_id in price_ids:
        plan = (
            Plan.objects.filter(stripe_monthly_price_id=price_id).first()
            or Plan.objects.filter(stripe_yearly_price_id=price_id).first()
        )
        if plan is not None:
            return plan
    return None


def _interval_for(plan: Plan, price_ids) -> str | None:
    if plan.stripe_yearly_price_id in price_ids:
        return Subscription.Interval.YEAR
    if plan.stripe_monthly_price_id in price_ids:
        return Subscription.Interval.MONTH
    return None


def event_apply(parsed) -> None:
    """Apply one verified platform event to the subscription it concerns."""
    subscription = _subscription_for(parsed)
    if subscription is None:
        if parsed.type.startswith(("customer.subscription.", "invoice.", "checkout.session.")):
            raise ApplicationError("No institution matches this event.", code="unknown_subscription")
        return
    subscription = Subscription.objects.select_for_update().select_related("plan").get(pk=subscription.pk)
    if parsed.customer_id and not subscription.stripe_customer_id:
        subscription.stripe_customer_id = parsed.customer_id
    if parsed.subscription_id and not subscription.stripe_subscription_id:
        subscription.stripe_subscription_id = parsed.subscription_id
    if (
        parsed.type == "checkout.session.completed"
        and not parsed.subscription_status
        and parsed.subscription_id
    ):
        parsed = _with_subscription(parsed)
    # An event older than the one that last changed the subscription is kept, not applied.
    if subscription.status_event_at is not None and parsed.created < subscription.status_event_at:
        subscription.save()
        logger.info("platform event %s is older than the last change; stored only", parsed.event_id)
        return
    plan = _plan_for_prices(parsed.price_ids)
    if plan is not None and plan != subscription.plan:
        before = subscription.plan.name
        subscription.plan = plan
        subscription.save()
        _record(subscription, "plan_changed", subscription.status, f"{before} → {plan.name}", parsed.event_id)
    if plan is not None:
        subscription.interval = _interval_for(plan, parsed.price_ids) or subscription.interval
    if parsed.current_period_end:
        subscription.current_period_end = parsed.current_period_end
    target = _target_status(parsed, subscription)
    if target is None:
        subscription.save()
        return
    subscription.status_event_at = parsed.created
    if target == St.ACTIVE and subscription.status == St.TRIALING:
        subscription.trial_ends_at = None
    _move(subscription, target, kind=parsed.type, event_id=parsed.event_id)


def _with_subscription(parsed):
    """A checkout event names its subscription without saying whether it is trialing or which
    price it has: ask Stripe for the subscription."""
    import dataclasses

    from .stripe_client import PlatformStripeError, subscription_fields

    try:
        fields = subscription_fields(_stripe().subscription(parsed.subscription_id))
    except (PlatformStripeError, ApplicationError):
        return parsed
    return dataclasses.replace(parsed, **fields)


def _target_status(parsed, subscription: Subscription) -> str | None:
    kind = parsed.type
    if kind == "checkout.session.completed":
        status = STRIPE_STATUSES.get(parsed.subscription_status or "active")
        return status if status in (St.ACTIVE, St.TRIALING) else St.ACTIVE
    if kind == "invoice.paid":
        return St.ACTIVE if subscription.status != St.CANCELLED else None
    if kind == "invoice.payment_failed":
        return St.PAST_DUE if subscription.status in (St.ACTIVE, St.TRIALING, St.PAST_DUE) else None
    if kind == "customer.subscription.deleted":
        return St.CANCELLED
    if kind in ("customer.subscription.updated", "customer.subscription.created"):
        return STRIPE_STATUSES.get(parsed.subscription_status)
    return None


# --- Time: trials, grace periods, retention --------------------------------------------------------


def subscriptions_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """What time decides: trials that ended, past-due grace that ran out, retention that ended.

    Each query selects only what is due (indexed by status and date), so it costs in proportion
    to the work, not to the number of institutions.
    """
    now = now or timezone.now()
    done = {"trial_over": 0, "suspended": 0, "deleted": 0}
    # A trial with a Stripe subscription ends at Stripe (its first invoice), not here.
    for subscription in Subscription.objects.select_related("plan").filter(
        status=St.TRIALING, trial_ends_at__lt=now, stripe_subscription_id=""
    ):
        with transaction.atomic():
            _move(
                subscription, St.SUSPENDED, kind="trial_over", note="The trial ended without a subscription."
            )
        done["trial_over"] += 1
    grace_start = now - timedelta(days=settings.PLATFORM_GRACE_DAYS)
    for subscription in Subscription.objects.select_related("plan").filter(
        status=St.PAST_DUE, past_due_since__lt=grace_start
    ):
        with transaction.atomic():
            _move(
                subscription,
                St.SUSPENDED,
                kind="grace_over",
                note=f"Payment overdue for more than {settings.PLATFORM_GRACE_DAYS} days.",
            )
        done["suspended"] += 1
    for subscription in Subscription.objects.select_related("institution").filter(
        status=St.CANCELLED, delete_after__lt=now
    ):
        institution_delete(institution=subscription.institution)
        done["deleted"] += 1
    return done


def institution_delete(*, institution: Institution) -> None:
    """The end of retention: the institution's schema, every row about it and its files go.

    Rows that refer to the institution by foreign key (domains, subscription and its events, usage)
    go with it; those that name its schema (reminders, jobs waiting for the broker, files due to
    expire) are deleted here; then every file under its media prefix."""
    from django.core.files.storage import default_storage

    from shared.core.models import ExpiringFile, OutboxTask
    from shared.reminders.models import DueReminder
    from tenants.backup import media_names

    schema = institution.schema_name
    logger.warning("deleting institution %s (schema %s) after its retention period", institution.pk, schema)
    with schema_context("public"), transaction.atomic():  # the directory forgets it through tenants.signals
        for model in (DueReminder, OutboxTask, ExpiringFile):
            model.objects.filter(schema_name=schema).delete()
        Institution.objects.get(pk=institution.pk).delete(force_drop=True)
    with schema_context(schema):  # the storage's prefix is the schema's
        for name in list(media_names(default_storage)):
            default_storage.delete(name)


# --- Usage ----------------------------------------------------------------------------------------


def usage_snapshot(*, institution: Institution, at: datetime | None = None) -> UsageSnapshot:
    """Count this month's usage in the institution's schema and keep it in the public one."""
    at = at or timezone.now()
    with tenant_context(institution):
        counts = usage_all(at=at)
    connection.set_schema_to_public()
    snapshot, _ = UsageSnapshot.objects.update_or_create(
        institution=institution,
        month=month_start(at).date(),
        defaults={
            "active_mentors": counts["active_mentors"],
            "active_learners": counts["active_learners"],
            "sessions": counts["sessions_per_month"],
            "storage_mb": counts["storage_mb"],
        },
    )
    return snapshot


def usage_report(*, institution: Institution, at: datetime | None = None) -> UsageSnapshot:
    """Snapshot the month's usage and, for plans billed by usage, report active learners to Stripe
    (a meter event whose identifier makes a repeat within the same day a no-op)."""
    from .stripe_client import PlatformStripeError

    at = at or timezone.now()
    snapshot = usage_snapshot(institution=institution, at=at)
    subscription = Subscription.objects.select_related("plan").get(institution=institution)
    if (
        subscription.plan.usage_unit_minor
        and subscription.stripe_customer_id
        and subscription.status
        in (
            St.ACTIVE,
            St.PAST_DUE,
        )
    ):
        try:
            _stripe().report_usage(
                customer_id=subscription.stripe_customer_id,
                value=snapshot.active_learners,
                identifier=f"{institution.schema_name}-{at.astimezone(UTC):%Y-%m-%d}",
                at=at,
            )
        except PlatformStripeError as error:
            logger.warning("usage report for %s failed: %s", institution.schema_name, error)
            raise
        UsageSnapshot.objects.filter(pk=snapshot.pk).update(reported_value=snapshot.active_learners)
        snapshot.refresh_from_db()
    return snapshot


def checkout_confirm(*, institution: Institution, session_id: str) -> Subscription:
    """The admin came back from Checkout: ask Stripe for the session and apply it (the webhook
    that follows is then a no-op)."""
    from .stripe_client import PlatformStripeError

    if not session_id:
        raise ApplicationError("No checkout to confirm.", status=400)
    try:
        parsed = _stripe().checkout_result(session_id=session_id)
    except PlatformStripeError as error:
        raise ApplicationError(error.message, code="checkout_incomplete", status=409) from None
    if parsed.institution_ref != institution.schema_name:
        raise ApplicationError("That checkout belongs to another institution.", status=403)
    with transaction.atomic():
        event_apply(parsed)
    return Subscription.objects.select_related("plan").get(institution=institution)


# --- Features an admin switches on ----------------------------------------------------------------


def branding_footer_set(*, institution: Institution, hide: bool) -> None:
    from .limits import require_feature
    from .models import Feature

    if hide:
        require_feature(Feature.REMOVE_BRANDING, institution=institution)
    with schema_context("public"):
        Institution.objects.filter(pk=institution.pk).update(hide_powered_by=hide)
        from tenants.directory import directory

        transaction.on_commit(directory.invalidate)
