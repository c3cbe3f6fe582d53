"""A cancelled institution is kept whole for its retention period, then deleted whole: its schema,
every public row about it (by key or by schema name) and every file under its media prefix."""

from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from shared.core.models import ExpiringFile, OutboxTask
from shared.core.testing import signup_for
from shared.platform_billing import services
from shared.platform_billing.models import Subscription, SubscriptionEvent, UsageSnapshot
from shared.reminders.models import DueReminder
from tenants.backup import media_names
from tenants.models import Domain, Institution
from tenants.services import institution_provision

St = Subscription.Status


def test_a_cancelled_institution_is_kept_until_its_retention_ends_then_nothing_of_it_remains(db, settings):
    institution = institution_provision(signup=signup_for("retained")).institution
    schema, pk = institution.schema_name, institution.pk
    with schema_context(schema):
        avatar = default_storage.save("avatars/someone.jpg", ContentFile(b"a face"))
        default_storage.save("materials/1/plan", ContentFile(b"a plan"))
        default_storage.save("exports/institution/everything.tar", ContentFile(b"an export"))
    now = timezone.now()
    DueReminder.objects.create(
        schema_name=schema, object_id=1, kind="reminder_1h", due_at=now + timedelta(days=1), starts_at=now
    )
    OutboxTask.objects.create(
        task_id="t-1", name="tenant_apps.notifications.tasks.deliver", schema_name=schema
    )
    ExpiringFile.objects.create(schema_name=schema, name="exports/institution/everything.tar", expires_at=now)
    services.usage_snapshot(institution=institution)
    cancelled_at = now - timedelta(days=settings.PLATFORM_RETENTION_DAYS - 1)
    Subscription.objects.filter(institution=institution).update(
        status=St.CANCELLED,
        cancelled_at=cancelled_at,
        delete_after=cancelled_at + timedelta(days=settings.PLATFORM_RETENTION_DAYS),
    )
    with connection.cursor() as cursor:  # a real sweep runs long after the institution's creation
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    # A day before the end of retention: nothing is touched.
    assert services.subscriptions_sweep()["deleted"] == 0
    assert Institution.objects.filter(pk=pk).exists() and schema_exists(schema)
    with schema_context(schema):
        assert default_storage.exists(avatar)

    # A day after: the schema, the rows and the files are gone.
    assert services.subscriptions_sweep(now=now + timedelta(days=2))["deleted"] == 1
    assert not schema_exists(schema)
    assert not Institution.objects.filter(pk=pk).exists()
    assert not Domain.objects.filter(tenant_id=pk).exists()
    assert not Subscription.objects.filter(institution_id=pk).exists()
    assert not SubscriptionEvent.objects.filter(subscription__institution_id=pk).exists()
    assert not UsageSnapshot.objects.filter(institution_id=pk).exists()
    for model in (DueReminder, OutboxTask, ExpiringFile):
        assert not model.objects.filter(schema_name=schema).exists(), model
    with schema_context(schema):
        assert list(media_names(default_storage)) == []
