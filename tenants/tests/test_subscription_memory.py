"""The institution's subscription comes from the directory's memory: no query per request, and a change
is seen at once by the process that made it and within the check interval by every other."""

from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django_redis import get_redis_connection

from shared.platform_billing.models import Plan, Subscription
from tenants.directory import directory, generation_key


def _subscription_queries(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "platform_billing_subscription" in q["sql"]]


def test_a_request_reads_no_subscription_once_seen(client_a):
    client_a.get("/api/v1/mentors/")
    with CaptureQueriesContext(connection) as queries:
        assert client_a.get("/api/v1/mentors/").status_code == 401
    assert _subscription_queries(queries) == []


def test_the_remembered_subscription_is_a_copy(institution_a):
    first = directory.subscription(institution_a)
    first.status = Subscription.Status.CANCELLED
    assert directory.subscription(institution_a).status != Subscription.Status.CANCELLED


def test_a_cancelled_subscription_closes_the_site_at_once(institution_a, client_a):
    assert client_a.get("/api/v1/mentors/").status_code in (401, 403)  # open: asks for a sign-in
    subscription = Subscription.objects.get(institution=institution_a)
    subscription.status = Subscription.Status.CANCELLED
    subscription.save()
    response = client_a.get("/api/v1/mentors/")
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "institution_closed"


def test_a_plan_change_is_seen_at_once(institution_a):
    before = directory.subscription(institution_a)
    plan = Plan.objects.get(pk=before.plan_id)
    plan.name = "Renamed plan"
    plan.save()
    assert directory.subscription(institution_a).plan.name == "Renamed plan"


def test_another_process_change_is_seen_after_the_check_interval(institution_a, client_a):
    client_a.get("/api/v1/mentors/")  # remembered
    # Another process cancels it and publishes the change (its commit increments the generation).
    Subscription.objects.filter(institution=institution_a).update(status=Subscription.Status.CANCELLED)
    get_redis_connection("default").incr(generation_key())
    with override_settings(TENANT_DIRECTORY_CHECK_INTERVAL=0):
        assert client_a.get("/api/v1/mentors/").status_code == 410


def test_one_institutions_subscription_is_never_anothers(institution_a, institution_b):
    Subscription.objects.filter(institution=institution_b).update(status=Subscription.Status.SUSPENDED)
    directory.forget()
    assert directory.subscription(institution_b).status == Subscription.Status.SUSPENDED
    assert directory.subscription(institution_a).status != Subscription.Status.SUSPENDED
    assert directory.subscription(institution_a).institution_id == institution_a.pk
