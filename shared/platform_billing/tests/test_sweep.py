"""What time decides: trials end, grace runs out, retention ends (the schema is deleted); and the
banners that say so."""

from datetime import timedelta

from django.db import connection
from django.utils import timezone

from shared.core.testing import HostClient, host_of, make_user, sign_in, signup_for
from shared.platform_billing import services
from shared.platform_billing.models import Subscription
from tenant_apps.accounts.models import User
from tenants.models import Institution
from tenants.services import institution_provision

St = Subscription.Status


def test_an_unsubscribed_trial_that_ended_is_suspended(institution_a):
    Subscription.objects.filter(institution=institution_a).update(
        trial_ends_at=timezone.now() - timedelta(minutes=1)
    )
    assert services.subscriptions_sweep()["trial_over"] >= 1
    subscription = Subscription.objects.get(institution=institution_a)
    assert subscription.status == St.SUSPENDED and subscription.suspended_at is not None
    assert subscription.events.filter(kind="trial_over").exists()


def test_a_cancelled_institution_is_deleted_after_its_retention(db):
    institution = institution_provision(signup=signup_for("gone-soon")).institution
    schema = institution.schema_name
    Subscription.objects.filter(institution=institution).update(
        status=St.CANCELLED,
        cancelled_at=timezone.now() - timedelta(days=91),
        delete_after=timezone.now() - timedelta(days=1),
    )
    with connection.cursor() as cursor:  # a real sweep runs long after the institution's creation
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert services.subscriptions_sweep()["deleted"] == 1
    assert not Institution.objects.filter(pk=institution.pk).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [schema])
        assert cursor.fetchone() is None


def test_the_sweep_leaves_what_is_not_due(institution_a, institution_b):
    before = dict(Subscription.objects.values_list("institution_id", "status"))
    assert services.subscriptions_sweep() == {"trial_over": 0, "suspended": 0, "deleted": 0}
    assert dict(Subscription.objects.values_list("institution_id", "status")) == before


def test_admins_see_the_past_due_banner_and_learners_do_not(institution_a):
    admin = make_user(institution_a, email="due-admin@a.example", role=User.Role.ADMIN)
    learner = make_user(institution_a, email="due-learner@a.example")
    Subscription.objects.filter(institution=institution_a).update(
        status=St.PAST_DUE, past_due_since=timezone.now()
    )
    admin_client = HostClient(host_of(institution_a))
    sign_in(admin_client, admin.email)
    page = admin_client.get("/mentors/").content.decode()
    assert 'data-testid="plan-notice"' in page and "Update your payment details" in page
    learner_client = HostClient(host_of(institution_a))
    sign_in(learner_client, learner.email)
    assert 'data-testid="plan-notice"' not in learner_client.get("/mentors/").content.decode()
