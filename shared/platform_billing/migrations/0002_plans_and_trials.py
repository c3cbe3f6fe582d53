"""The three plans, and a trial for every institution that existed before platform billing."""

from datetime import timedelta

from django.db import migrations
from django.utils import timezone


def forwards(apps, schema_editor):
    from shared.platform_billing.services import PLANS

    Plan = apps.get_model("platform_billing", "Plan")
    Subscription = apps.get_model("platform_billing", "Subscription")
    SubscriptionEvent = apps.get_model("platform_billing", "SubscriptionEvent")
    Institution = apps.get_model("tenants", "Institution")
    for spec in PLANS:
        Plan.objects.get_or_create(code=spec["code"], defaults={k: v for k, v in spec.items() if k != "code"})
    growth = Plan.objects.get(code="growth")
    ends = timezone.now() + timedelta(days=14)
    for institution in Institution.objects.exclude(schema_name="public"):
        subscription, created = Subscription.objects.get_or_create(
            institution=institution, defaults={"plan": growth, "status": "trialing", "trial_ends_at": ends}
        )
        if created:
            SubscriptionEvent.objects.create(
                subscription=subscription, kind="trial_started", to_status="trialing", plan_code="growth"
            )


class Migration(migrations.Migration):
    dependencies = [("platform_billing", "0001_initial"), ("tenants", "0001_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
