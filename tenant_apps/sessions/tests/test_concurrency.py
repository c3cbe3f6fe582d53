"""Real concurrency against Postgres: threads with their own connections race for one slot/seat."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError
from tenant_apps.accounts.models import User

from .. import bookings as booking_services
from .. import groups as group_services
from ..models import Booking, BookingTransition, Enrollment, GroupSession, MentorProfile
from .factories import make_learner, make_mentor, next_weekday_at

RACERS = 20


@pytest.fixture
def committed_a(_institutions, django_db_blocker):
    """Institution A with no test transaction: every thread sees what the others commit."""
    institution = _institutions[0]
    with django_db_blocker.unblock():
        made: list[User] = []
        yield institution, made
        with tenant_context(institution):
            Enrollment.objects.filter(learner__in=made).delete()
            GroupSession.objects.filter(mentor__user__in=made).delete()
            BookingTransition.objects.filter(booking__mentor__user__in=made).delete()
            Booking.objects.filter(mentor__user__in=made).delete()
            MentorProfile.objects.filter(user__in=made).delete()
            User.objects.filter(pk__in=[u.pk for u in made]).delete()
        connection.set_schema_to_public()


def race(institution, attempt, arguments: list) -> Counter:
    """Run `attempt(argument)` in RACERS threads released together; count the outcomes."""
    barrier = threading.Barrier(len(arguments))

    def run(argument):
        try:
            with tenant_context(institution):
                prepared = attempt.prepare(argument)
                barrier.wait(timeout=30)
                return attempt(prepared)
        except ApplicationError as error:
            return error.status
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(arguments)) as pool:
        return Counter(pool.map(run, arguments))


def test_twenty_attempts_at_one_slot_make_exactly_one_booking(committed_a):
    institution, made = committed_a
    mentor = make_mentor(institution, email="race-mentor@a.example")
    learners = [make_learner(institution, email=f"racer{i}@a.example") for i in range(RACERS)]
    made += [mentor.user, *learners]
    start = next_weekday_at(10)

    class Attempt:
        @staticmethod
        def prepare(learner_id):
            return User.objects.get(pk=learner_id), MentorProfile.objects.select_related("user").get(
                pk=mentor.pk
            )

        def __call__(self, prepared):
            learner, profile = prepared
            booking_services.booking_request(learner=learner, mentor=profile, starts_at=start, minutes=30)
            return "booked"

    outcomes = race(institution, Attempt(), [learner.pk for learner in learners])
    assert outcomes == Counter({"booked": 1, 409: RACERS - 1})
    with tenant_context(institution):
        assert Booking.objects.filter(mentor=mentor, status__in=Booking.LIVE_STATUSES).count() == 1


def test_overlapping_but_different_slots_also_make_one_booking(committed_a):
    """10:00 for 60 min, 10:30 for 30 min, … overlap each other: Postgres lets one through."""
    institution, made = committed_a
    mentor = make_mentor(institution, email="overlap-mentor@a.example", session_lengths=[30, 60])
    learners = [make_learner(institution, email=f"overlap{i}@a.example") for i in range(6)]
    made += [mentor.user, *learners]
    start = next_weekday_at(10)
    wishes = [(0, 60), (30, 30), (0, 30), (30, 60), (0, 60), (30, 30)]

    class Attempt:
        @staticmethod
        def prepare(index):
            learner = User.objects.get(pk=learners[index].pk)
            return learner, MentorProfile.objects.select_related("user").get(pk=mentor.pk), wishes[index]

        def __call__(self, prepared):
            learner, profile, (offset, minutes) = prepared
            booking_services.booking_request(
                learner=learner, mentor=profile, starts_at=start + timedelta(minutes=offset), minutes=minutes
            )
            return "booked"

    outcomes = race(institution, Attempt(), list(range(len(wishes))))
    with tenant_context(institution):
        live = list(Booking.objects.filter(mentor=mentor, status__in=Booking.LIVE_STATUSES))
    # Whatever won, no two live bookings overlap, and every loser got a 409.
    for first in live:
        for second in live:
            if first.pk < second.pk:
                assert first.ends_at <= second.starts_at or second.ends_at <= first.starts_at
    assert outcomes["booked"] == len(live)
    assert outcomes["booked"] + outcomes[409] == len(wishes)


def test_twenty_learners_racing_for_the_last_seat(committed_a):
    institution, made = committed_a
    mentor = make_mentor(institution, email="group-mentor@a.example")
    early = [make_learner(institution, email=f"early{i}@a.example") for i in range(4)]
    racers = [make_learner(institution, email=f"seat{i}@a.example") for i in range(RACERS)]
    made += [mentor.user, *early, *racers]
    with tenant_context(institution):
        session = group_services.group_session_create(
            mentor=MentorProfile.objects.select_related("user").get(pk=mentor.pk),
            title="SQL clinic",
            starts_at=timezone.now() + timedelta(days=3),
            minutes=60,
            capacity=5,
        )
        for learner in early:
            group_services.enrollment_create(group_session=session, learner=learner)

    class Attempt:
        @staticmethod
        def prepare(learner_id):
            return User.objects.get(pk=learner_id), GroupSession.objects.get(pk=session.pk)

        def __call__(self, prepared):
            learner, group = prepared
            return group_services.enrollment_create(group_session=group, learner=learner).status

    outcomes = race(institution, Attempt(), [learner.pk for learner in racers])
    assert outcomes == Counter({"enrolled": 1, "waitlisted": RACERS - 1})
    with tenant_context(institution):
        assert session.enrollments.filter(status="enrolled").count() == 5
