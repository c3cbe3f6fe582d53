"""Group sessions: capacity, waitlist promotion, cancellation, pages, API and isolation."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError
from shared.core.testing import HostClient, host_of, sign_in

from .. import groups as services
from ..models import Enrollment
from .factories import make_booking, make_learner, make_mentor


@pytest.fixture
def group(institution_a):
    mentor = make_mentor(institution_a, email="mo@a.example")
    learners = [make_learner(institution_a, email=f"l{i}@a.example") for i in range(4)]
    with tenant_context(institution_a):
        session = services.group_session_create(
            mentor=mentor,
            title="Career clinic",
            starts_at=timezone.now() + timedelta(days=2),
            minutes=60,
            capacity=2,
        )
        yield session, mentor, learners


def test_capacity_then_waitlist_then_promotion(group):
    session, _, (a, b, c, d) = group
    assert services.enrollment_create(group_session=session, learner=a).status == "enrolled"
    assert services.enrollment_create(group_session=session, learner=b).status == "enrolled"
    waiting_c = services.enrollment_create(group_session=session, learner=c)
    waiting_d = services.enrollment_create(group_session=session, learner=d)
    assert (waiting_c.status, waiting_d.status) == ("waitlisted", "waitlisted")
    with pytest.raises(ApplicationError, match="already enrolled"):
        services.enrollment_create(group_session=session, learner=a)

    first = Enrollment.objects.get(group_session=session, learner=a)
    promoted = services.enrollment_cancel(enrollment=first, actor=a)
    assert promoted.learner == c  # first come, first served
    assert session.enrollments.filter(status="enrolled").count() == 2
    # Leaving from the waitlist frees no seat and promotes nobody.
    assert services.enrollment_cancel(enrollment=waiting_d, actor=d) is None
    # Someone who left may come back (to the end of the line).
    assert services.enrollment_create(group_session=session, learner=a).status == "waitlisted"


def test_only_the_learner_leaves_and_only_the_mentor_cancels(group):
    session, mentor, (a, b, *_) = group
    enrollment = services.enrollment_create(group_session=session, learner=a)
    with pytest.raises(ApplicationError) as error:
        services.enrollment_cancel(enrollment=enrollment, actor=b)
    assert error.value.status == 403
    with pytest.raises(ApplicationError):
        services.group_session_cancel(group_session=session, actor=a)
    services.group_session_cancel(group_session=session, actor=mentor.user)
    assert session.enrollments.exclude(status="cancelled").count() == 0
    with pytest.raises(ApplicationError, match="not open"):
        services.enrollment_create(group_session=session, learner=b)


def test_publishing_checks_time_price_and_clashes(group):
    session, mentor, (learner, *_) = group
    with pytest.raises(ApplicationError, match="future"):
        services.group_session_create(
            mentor=mentor, title="Past", starts_at=timezone.now() - timedelta(hours=1), minutes=60, capacity=3
        )
    with pytest.raises(ApplicationError) as error:
        services.group_session_create(
            mentor=mentor,
            title="Clash",
            starts_at=session.starts_at + timedelta(minutes=30),
            minutes=60,
            capacity=3,
        )
    assert error.value.status == 409
    make_booking(mentor, learner, session.starts_at + timedelta(hours=3))
    with pytest.raises(ApplicationError, match="already have a session"):
        services.group_session_create(
            mentor=mentor,
            title="Clash 2",
            starts_at=session.starts_at + timedelta(hours=3),
            minutes=30,
            capacity=3,
        )
    with pytest.raises(ApplicationError, match="price"):
        services.group_session_create(
            mentor=mentor,
            title="Too dear",
            starts_at=session.starts_at + timedelta(days=1),
            minutes=60,
            capacity=3,
            price_minor=10**9,
        )
    with pytest.raises(ApplicationError, match="Only approved mentors"):
        learner_profile = type(mentor)(user=learner)
        services.group_session_create(
            mentor=learner_profile,
            title="No",
            starts_at=session.starts_at + timedelta(days=1),
            minutes=60,
            capacity=3,
        )


def test_group_pages_and_api(institution_a, group):
    session, _, _ = group
    client = HostClient(host_of(institution_a))
    sign_in(client, "l0@a.example")
    assert "Career clinic" in client.get("/groups/").content.decode()
    client.post(f"/groups/{session.pk}/enrol/")
    assert "You have a seat" in client.get(f"/groups/{session.pk}/").content.decode()
    assert client.get("/api/v1/groups/").json()[0]["enrolled"] == 1
    left = client.post(f"/api/v1/groups/{session.pk}/leave/")
    assert left.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/groups/{session.pk}/leave/")
    assert again.status_code == 404
    # A learner cannot publish a group session.
    denied = client.post(
        "/api/v1/groups/",
        {
            "title": "x",
            "starts_at": (timezone.now() + timedelta(days=3)).isoformat(),
            "minutes": 60,
            "capacity": 3,
        },
        content_type="application/json",
    )
    assert denied.status_code == 403


def test_a_mentor_publishes_through_the_page(institution_a):
    make_mentor(institution_a, email="mo@a.example")
    client = HostClient(host_of(institution_a))
    sign_in(client, "mo@a.example")
    when = (timezone.now() + timedelta(days=4)).strftime("%Y-%m-%dT10:00")
    response = client.post(
        "/groups/new/",
        {"title": "Git clinic", "starts_at": when, "minutes": 45, "capacity": 6, "price": "0"},
    )
    assert response.status_code == 302
    assert "Git clinic" in client.get(response["Location"]).content.decode()
    bad = client.post("/groups/new/", {"title": "", "starts_at": "soon", "minutes": 5, "capacity": 0})
    assert bad.status_code == 400


def test_groups_of_a_are_invisible_on_b(institution_a, institution_b, group):
    session, _, _ = group
    make_learner(institution_b, email="l@b.example")
    client = HostClient(host_of(institution_b))
    sign_in(client, "l@b.example")
    assert "Career clinic" not in client.get("/groups/").content.decode()
    assert client.get("/api/v1/groups/").json() == []
    assert client.get(f"/groups/{session.pk}/").status_code == 404
    assert client.post(f"/api/v1/groups/{session.pk}/enrol/").status_code == 404
