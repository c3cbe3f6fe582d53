"""Plan limits and features refuse cleanly at the edge and allow below it; a suspended or
cancelled institution is handled as its people expect; other institutions are unaffected."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError
from shared.core.testing import HostClient, host_of, make_user, sign_in
from shared.platform_billing.limits import require_feature, require_room
from shared.platform_billing.models import Feature, Limit, Plan, Subscription
from tenant_apps.accounts import services as accounts
from tenant_apps.accounts.models import User
from tenant_apps.sessions import bookings
from tenant_apps.sessions.materials import material_upload
from tenant_apps.sessions.tests.factories import make_learner, make_mentor, next_weekday_at
from tenants.directory import directory


def on_plan(institution, **limits) -> Plan:
    plan = Plan.objects.create(
        code=f"tiny-{institution.slug}",
        name="Tiny",
        monthly_price_minor=100,
        yearly_price_minor=1000,
        **limits,
    )
    Subscription.objects.filter(institution=institution).update(plan=plan)
    return plan


def set_status(institution, status: str, **fields) -> None:
    Subscription.objects.filter(institution=institution).update(status=status, **fields)


def test_every_new_institution_starts_a_fourteen_day_trial(institution_a):
    subscription = Subscription.objects.select_related("plan").get(institution=institution_a)
    assert subscription.status == Subscription.Status.TRIALING
    assert subscription.plan.code == "growth"
    assert timedelta(days=13) < subscription.trial_ends_at - subscription.created_at <= timedelta(days=14)
    assert subscription.events.filter(kind="trial_started").exists()
    assert set(Plan.objects.values_list("code", flat=True)) >= {"starter", "growth", "enterprise"}


def test_the_mentor_limit_refuses_the_one_too_many_and_allows_below(institution_a):
    admin = make_user(institution_a, email="lim-admin@a.example", role=User.Role.ADMIN)
    with tenant_context(institution_a):
        existing = User.objects.filter(
            role=User.Role.MENTOR, mentor_status=User.MentorStatus.APPROVED, is_active=True
        )
        on_plan(institution_a, max_active_mentors=existing.count() + 1)
    first = make_learner(institution_a, email="lim-1@a.example")
    second = make_learner(institution_a, email="lim-2@a.example")
    with tenant_context(institution_a):
        accounts.member_role_change(actor=admin, member=first, role=User.Role.MENTOR)  # the last place
        with pytest.raises(ApplicationError, match=r"allows .* active mentors") as refused:
            accounts.member_role_change(actor=admin, member=second, role=User.Role.MENTOR)
        assert refused.value.code == "plan_limit" and "upgrade" in refused.value.message
        assert User.objects.get(pk=second.pk).role == User.Role.LEARNER


def test_the_learner_limit_shows_a_form_error_on_sign_up(institution_a):
    with tenant_context(institution_a):
        on_plan(
            institution_a, max_active_learners=User.objects.filter(role="learner", is_active=True).count()
        )
    connection.set_schema_to_public()
    client = HostClient(host_of(institution_a))
    response = client.post(
        "/accounts/signup/",
        {
            "email": "late@a.example",
            "full_name": "Late Comer",
            "password": "a-long-pass-phrase-9",
            "timezone": "UTC",
        },
    )
    assert response.status_code in (200, 400)
    assert "allows" in response.content.decode() and "upgrade" in response.content.decode()
    with tenant_context(institution_a):
        assert not User.objects.filter(email="late@a.example").exists()


def test_the_monthly_session_limit_refuses_at_the_edge(institution_a):
    mentor = make_mentor(institution_a, email="lim-m@a.example")
    learner = make_learner(institution_a, email="lim-l@a.example")
    start = next_weekday_at(10, weeks_ahead=1)
    with tenant_context(institution_a):
        from shared.platform_billing.limits import usage_count

        used = usage_count(Limit.SESSIONS_PER_MONTH, at=start)
        on_plan(institution_a, max_sessions_per_month=used + 1)
        bookings.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
        with pytest.raises(ApplicationError, match="sessions per month"):
            bookings.booking_request(
                learner=learner, mentor=mentor, starts_at=start + timedelta(hours=1), minutes=30
            )


def test_the_storage_limit_refuses_an_upload_that_would_pass_it(institution_a):
    mentor = make_mentor(institution_a, email="lim-s@a.example")
    learner = make_learner(institution_a, email="lim-sl@a.example")
    with tenant_context(institution_a):
        booking = bookings.booking_request(
            learner=learner, mentor=mentor, starts_at=next_weekday_at(11), minutes=30
        )
        on_plan(institution_a, max_storage_mb=0)
        upload = SimpleUploadedFile("notes.txt", b"x" * 2048, content_type="text/plain")
        with pytest.raises(ApplicationError, match="MB of files"):
            material_upload(booking=booking, user=learner, upload=upload)
        Plan.objects.filter(code=f"tiny-{institution_a.slug}").update(max_storage_mb=1)
        upload = SimpleUploadedFile("notes.txt", b"x" * 2048, content_type="text/plain")
        assert material_upload(booking=booking, user=learner, upload=upload).size == 2048


@pytest.mark.parametrize("feature", [f for f, _ in Feature.choices])
def test_each_feature_is_refused_without_it_and_allowed_with_it(institution_a, feature):
    with tenant_context(institution_a):
        plan = on_plan(institution_a)
        with pytest.raises(ApplicationError) as refused:
            require_feature(feature)
        assert refused.value.code == "plan_feature" and "upgrade" in refused.value.message
        setattr(plan, feature, True)
        plan.save()
        require_feature(feature)  # allowed


def test_custom_domains_and_the_footer_are_gated_on_the_plan_page(institution_a):
    admin = make_user(institution_a, email="feat-admin@a.example", role=User.Role.ADMIN)
    client = HostClient(host_of(institution_a))
    sign_in(client, admin.email)
    Subscription.objects.filter(institution=institution_a).update(plan=Plan.objects.get(code="starter"))
    response = client.post("/manage/domains/", {"domain": "mentoring.example.edu"}, follow=True)
    assert "not part of the Starter plan" in response.content.decode()
    response = client.post("/plan/branding/", {"hide_powered_by": "on"}, follow=True)
    assert "not part of the Starter plan" in response.content.decode()
    assert "Powered by" in client.get("/").content.decode()

    Subscription.objects.filter(institution=institution_a).update(plan=Plan.objects.get(code="enterprise"))
    response = client.post("/manage/domains/", {"domain": "mentoring.example.edu"}, follow=True)
    assert "mentoring.example.edu added" in response.content.decode()
    taken = client.post("/manage/domains/", {"domain": "mentoring.example.edu"}, follow=True)
    assert "already in use" in taken.content.decode()
    client.post("/plan/branding/", {"hide_powered_by": "on"}, follow=True)
    directory.forget()  # what the commit's invalidation does (tests roll back instead of committing)
    assert "Powered by" not in client.get("/").content.decode()


def test_a_suspended_institution_takes_no_bookings_but_its_admin_reaches_billing(
    institution_a, institution_b
):
    mentor = make_mentor(institution_a, email="sus-m@a.example")
    learner = make_learner(institution_a, email="sus-l@a.example")
    admin = make_user(institution_a, email="sus-admin@a.example", role=User.Role.ADMIN)
    set_status(institution_a, Subscription.Status.SUSPENDED, suspended_at=timezone.now())
    with tenant_context(institution_a), pytest.raises(ApplicationError, match="not taking new bookings"):
        bookings.booking_request(learner=learner, mentor=mentor, starts_at=next_weekday_at(12), minutes=30)
    connection.set_schema_to_public()
    learner_client = HostClient(host_of(institution_a))
    sign_in(learner_client, learner.email)
    page = learner_client.get(f"/mentors/{mentor.pk}/")
    assert page.status_code == 200 and "not taking new bookings" in page.content.decode()
    response = learner_client.post(
        f"/mentors/{mentor.pk}/book/",
        {"starts_at": next_weekday_at(12).isoformat(), "minutes": "30"},
        follow=True,
    )
    assert response.status_code == 200 and "not taking new bookings" in response.content.decode()
    admin_client = HostClient(host_of(institution_a))
    sign_in(admin_client, admin.email)
    plan_page = admin_client.get("/plan/")
    assert plan_page.status_code == 200 and "Suspended" in plan_page.content.decode()

    # Institution B is unaffected.
    mentor_b = make_mentor(institution_b, email="sus-m@b.example")
    learner_b = make_learner(institution_b, email="sus-l@b.example")
    with tenant_context(institution_b):
        booked = bookings.booking_request(
            learner=learner_b, mentor=mentor_b, starts_at=next_weekday_at(12), minutes=30
        )
        assert booked.status == "confirmed"


def test_a_cancelled_institution_is_closed_except_to_its_admins_billing_and_export(institution_a):
    learner = make_learner(institution_a, email="closed-l@a.example")
    admin = make_user(institution_a, email="closed-admin@a.example", role=User.Role.ADMIN)
    set_status(
        institution_a,
        Subscription.Status.CANCELLED,
        cancelled_at=timezone.now(),
        delete_after=timezone.now() + timedelta(days=90),
    )
    anonymous = HostClient(host_of(institution_a))
    closed = anonymous.get("/mentors/")
    assert closed.status_code == 410 and "This site is closed" in closed.content.decode()
    assert anonymous.get("/api/bookings/").status_code == 410
    learner_client = HostClient(host_of(institution_a))
    sign_in(learner_client, learner.email)
    assert learner_client.get("/sessions/").status_code == 410
    assert learner_client.get("/plan/").status_code == 410
    admin_client = HostClient(host_of(institution_a))
    sign_in(admin_client, admin.email)
    assert admin_client.get("/plan/").status_code == 200
    export = admin_client.get("/plan/export/")
    assert export.status_code == 200 and export["Content-Type"] == "application/zip"


def test_require_room_with_no_limit_allows_anything(institution_a):
    with tenant_context(institution_a):
        on_plan(institution_a)  # every limit empty: unlimited
        for limit in Limit.values:
            require_room(limit, adding=10_000)
