"""Each event reaches the right people on the right channels, as they chose; never anyone of
another institution."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.testing import make_user
from shared.reminders.models import DueReminder
from tenant_apps.accounts import services as accounts
from tenant_apps.accounts.models import User
from tenant_apps.notifications.models import (
    Channel,
    Delivery,
    Event,
    InstitutionDefault,
    Notification,
    Preference,
)
from tenant_apps.sessions import bookings
from tenant_apps.sessions.tests.factories import make_learner, make_mentor, next_weekday_at


@pytest.fixture
def people(institution_a):
    mentor = make_mentor(institution_a, email="ev-m@a.example", timezone_name="America/New_York")
    learner = make_learner(institution_a, email="ev-l@a.example", timezone="Asia/Kolkata")
    with tenant_context(institution_a):
        yield mentor, learner


def told(user, event: str) -> list[Notification]:
    return list(Notification.objects.filter(recipient=user, event=event))


def channels(notification: Notification) -> set[str]:
    return {Channel.IN_APP} | set(notification.deliveries.values_list("channel", flat=True))


def test_a_confirmed_booking_tells_both_on_their_own_clocks_and_schedules_reminders(people):
    mentor, learner = people
    start = next_weekday_at(15)
    booking = bookings.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    (for_learner,) = told(learner, Event.BOOKING_CONFIRMED)
    (for_mentor,) = told(mentor.user, Event.BOOKING_CONFIRMED)
    assert "(Asia/Kolkata)" in for_learner.title and "Mo Mentor" in for_learner.title
    assert "(America/New_York)" in for_mentor.title and "Lee Learner" in for_mentor.title
    assert channels(for_learner) == {Channel.IN_APP, Channel.EMAIL}
    assert for_learner.url == f"/sessions/{booking.pk}/"
    kinds = set(
        DueReminder.objects.filter(object_id=booking.pk, subject="booking").values_list("kind", flat=True)
    )
    assert kinds == {"reminder_24h", "reminder_1h", "session_starting"}


def test_a_request_tells_the_mentor_and_a_decline_tells_the_learner(people):
    mentor, learner = people
    mentor.requires_approval = True
    mentor.save()
    booking = bookings.booking_request(
        learner=learner, mentor=mentor, starts_at=next_weekday_at(16), minutes=30
    )
    assert len(told(mentor.user, Event.BOOKING_REQUESTED)) == 1 and not told(learner, Event.BOOKING_REQUESTED)
    bookings.booking_decline(booking=booking, actor=mentor.user, reason="Away that week")
    (declined,) = told(learner, Event.BOOKING_DECLINED)
    assert declined.body == "Away that week"
    assert not DueReminder.objects.filter(object_id=booking.pk).exists()


def test_cancelling_tells_the_other_person_and_drops_the_reminders(people):
    mentor, learner = people
    booking = bookings.booking_request(
        learner=learner, mentor=mentor, starts_at=next_weekday_at(17), minutes=30
    )
    bookings.booking_cancel(booking=booking, actor=learner, reason="Exam moved")
    assert len(told(mentor.user, Event.BOOKING_CANCELLED)) == 1
    assert not told(learner, Event.BOOKING_CANCELLED)  # they did it themselves
    assert not DueReminder.objects.filter(object_id=booking.pk, subject="booking").exists()


def test_rescheduling_moves_the_reminders_to_the_new_time(people):
    mentor, learner = people
    start = next_weekday_at(15)
    booking = bookings.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    new = bookings.booking_reschedule(booking=booking, actor=learner, starts_at=start + timedelta(hours=2))
    assert not DueReminder.objects.filter(object_id=booking.pk, subject="booking").exists()
    starts = set(
        DueReminder.objects.filter(object_id=new.pk, subject="booking").values_list("starts_at", flat=True)
    )
    assert starts == {new.starts_at}
    assert (
        len(told(learner, Event.BOOKING_RESCHEDULED)) == 1
        and len(told(mentor.user, Event.BOOKING_RESCHEDULED)) == 1
    )


def test_preferences_and_institution_defaults_decide_the_channels(people):
    mentor, learner = people
    Preference.objects.create(
        user=learner, event=Event.BOOKING_CONFIRMED, in_app=True, email=False, sms=False
    )
    InstitutionDefault.objects.create(event=Event.BOOKING_CONFIRMED, in_app=False, email=False, sms=False)
    bookings.booking_request(learner=learner, mentor=mentor, starts_at=next_weekday_at(18), minutes=30)
    (for_learner,) = told(learner, Event.BOOKING_CONFIRMED)
    assert not for_learner.deliveries.exists()  # in the app only, as chosen
    assert not told(mentor.user, Event.BOOKING_CONFIRMED)  # nothing at all: the institution's default


def test_sms_goes_only_to_people_who_opted_in_with_a_number(people):
    mentor, learner = people
    Preference.objects.create(user=learner, event=Event.BOOKING_CONFIRMED, in_app=True, email=True, sms=True)
    bookings.booking_request(learner=learner, mentor=mentor, starts_at=next_weekday_at(19), minutes=30)
    (first,) = told(learner, Event.BOOKING_CONFIRMED)
    assert Channel.SMS not in channels(first)
    User.objects.filter(pk=learner.pk).update(phone="+447700900123", sms_opt_in=True)
    learner.refresh_from_db()
    bookings.booking_request(learner=learner, mentor=mentor, starts_at=next_weekday_at(20), minutes=30)
    second = told(learner, Event.BOOKING_CONFIRMED)[0]
    assert channels(second) == {Channel.IN_APP, Channel.EMAIL, Channel.SMS}


def test_mentor_approval_completion_and_money_events(people, institution_a):
    mentor, learner = people
    admin = make_user(institution_a, email="ev-admin@a.example", role=User.Role.ADMIN)
    applicant = make_learner(institution_a, email="ev-applicant@a.example")
    accounts.mentor_apply(user=applicant, application="I teach Go.")
    accounts.mentor_decide(actor=admin, member=User.objects.get(pk=applicant.pk), approve=True)
    assert len(told(applicant, Event.MENTOR_APPROVED)) == 1

    booking = bookings.booking_request(
        learner=learner, mentor=mentor, starts_at=next_weekday_at(16), minutes=30
    )
    from tenant_apps.sessions.models import Booking

    Booking.objects.filter(pk=booking.pk).update(
        starts_at=timezone.now() - timedelta(hours=2), ends_at=timezone.now() - timedelta(hours=1)
    )
    booking.refresh_from_db()
    bookings.booking_complete(booking=booking, actor=mentor.user)
    (review,) = told(learner, Event.REVIEW_REQUESTED)
    assert channels(review) == {Channel.IN_APP}


def test_nothing_reaches_another_institutions_people(people, institution_b):
    mentor, learner = people
    twin = make_learner(institution_b, email="ev-l@a.example")  # the same person, elsewhere
    bookings.booking_request(learner=learner, mentor=mentor, starts_at=next_weekday_at(18), minutes=30)
    with tenant_context(institution_b):
        assert not Notification.objects.filter(recipient_id=twin.pk).exists()
        assert not Delivery.objects.exists()
