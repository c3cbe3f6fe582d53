"""Periodic platform billing work (public schema; beat runs it)."""

from celery import shared_task


@shared_task(acks_late=True)
def subscriptions_sweep() -> dict:
    """Trials that ended, past-due grace that ran out, retention that ended (only what is due)."""
    from .services import subscriptions_sweep as sweep

    return sweep()


@shared_task(acks_late=True)
def usage_report_all() -> int:
    """Once a day: this month's usage of each live institution, reported to Stripe where billed by usage."""
    from .models import Subscription

    live = Subscription.objects.select_related("institution", "plan").exclude(
        status=Subscription.Status.CANCELLED
    )
    done = 0
    for subscription in live:
        usage_report_one.delay(subscription.institution_id)
        done += 1
    return done


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=30, max_retries=5)
def usage_report_one(institution_id: int) -> None:
    from tenants.models import Institution

    from .services import usage_report

    institution = Institution.objects.filter(pk=institution_id).first()
    if institution is not None:
        usage_report(institution=institution)
