"""Reminders arrive once per session, kind and person: whatever runs twice, whatever runs at the
same time, whatever moved in between."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from shared.reminders.models import DueReminder
from shared.reminders.services import reminder_send, reminders_tick
from tenant_apps.accounts.models import User
from tenant_apps.notifications.models import Event, Notification
from tenant_apps.sessions import bookings
from tenant_apps.sessions.models import Booking, BookingTransition, MentorProfile
from tenant_apps.sessions.tests.factories import make_learner, make_mentor, next_weekday_at


def due(reminder: DueReminder) -> DueReminder:
    DueReminder.objects.filter(pk=reminder.pk).update(due_at=timezone.now() - timedelta(minutes=1))
    reminder.refresh_from_db()
    return reminder


@pytest.fixture
def confirmed(institution_a):
    mentor = make_mentor(institution_a, email="rem-m@a.example")
    learner = make_learner(institution_a, email="rem-l@a.example")
    with tenant_context(institution_a):
        booking = bookings.booking_request(
            learner=learner, mentor=mentor, starts_at=next_weekday_at(10), minutes=30
        )
        yield booking


def test_a_reminder_sent_twice_reaches_each_person_once(confirmed):
    reminder = due(DueReminder.objects.get(object_id=confirmed.pk, subject="booking", kind="reminder_1h"))
    reminder_send(reminder_id=reminder.pk)
    DueReminder.objects.filter(pk=reminder.pk).update(
        done_at=None
    )  # as if the worker died before recording it
    reminder_send(reminder_id=reminder.pk)
    reminders = Notification.objects.filter(event=Event.REMINDER_1H, data__booking_id=confirmed.pk)
    assert sorted(reminders.values_list("recipient_id", flat=True)) == sorted(
        [confirmed.learner_id, confirmed.mentor.user_id]
    )
    assert DueReminder.objects.get(pk=reminder.pk).done_at is not None


def test_a_moved_session_gets_no_reminder_of_its_old_time(confirmed):
    reminder = due(DueReminder.objects.get(object_id=confirmed.pk, subject="booking", kind="reminder_24h"))
    # Moved behind the schedule's back (e.g. the reminder was already claimed): the time no longer matches.
    Booking.objects.filter(pk=confirmed.pk).update(
        starts_at=confirmed.starts_at + timedelta(hours=2), ends_at=confirmed.ends_at + timedelta(hours=2)
    )
    reminder_send(reminder_id=reminder.pk)
    assert not Notification.objects.filter(event=Event.REMINDER_24H).exists()


def test_a_cancelled_session_gets_no_reminder(confirmed):
    kept = list(
        DueReminder.objects.filter(object_id=confirmed.pk, subject="booking").values_list("pk", flat=True)
    )
    bookings.booking_cancel(booking=confirmed, actor=confirmed.learner, reason="Ill")
    assert not DueReminder.objects.filter(pk__in=kept).exists()
    for pk in kept:
        reminder_send(reminder_id=pk)  # a task enqueued before the cancellation
    assert not Notification.objects.filter(event__in=[Event.REMINDER_1H, Event.REMINDER_24H]).exists()


def test_the_tick_claims_only_what_is_due(confirmed):
    reminder = due(DueReminder.objects.get(object_id=confirmed.pk, subject="booking", kind="reminder_1h"))
    with schema_context("public"):
        claimed = reminders_tick()
    assert claimed >= 1
    assert DueReminder.objects.get(pk=reminder.pk).claimed_at is not None
    later = DueReminder.objects.get(object_id=confirmed.pk, subject="booking", kind="session_starting")
    assert later.claimed_at is None  # not due yet
    with schema_context("public"):
        assert reminders_tick() == 0  # claimed ones are not claimed again (until they are stale)


# --- At the same time, on real connections -------------------------------------------------------


@pytest.fixture
def committed(_institutions, django_db_blocker):
    institution = _institutions[0]
    with django_db_blocker.unblock():
        made: list[User] = []
        yield institution, made
        with tenant_context(institution):
            booking_ids = list(Booking.objects.filter(mentor__user__in=made).values_list("pk", flat=True))
            Notification.objects.filter(recipient__in=made).delete()
            BookingTransition.objects.filter(booking_id__in=booking_ids).delete()
            Booking.objects.filter(pk__in=booking_ids).delete()
            MentorProfile.objects.filter(user__in=made).delete()
            User.objects.filter(pk__in=[u.pk for u in made]).delete()
        with schema_context("public"):
            DueReminder.objects.filter(
                schema_name=institution.schema_name, object_id__in=booking_ids
            ).delete()
        connection.set_schema_to_public()


def test_two_dispatches_at_once_send_each_reminder_once(committed):
    institution, made = committed
    mentor = make_mentor(institution, email="race-rem-m@a.example")
    learners = [make_learner(institution, email=f"race-rem-{i}@a.example") for i in range(5)]
    made += [mentor.user, *learners]
    with tenant_context(institution):
        booked = [
            bookings.booking_request(
                learner=learner, mentor=mentor, starts_at=next_weekday_at(9) + timedelta(hours=i), minutes=30
            )
            for i, learner in enumerate(learners)
        ]
    connection.set_schema_to_public()
    ids = [b.pk for b in booked]
    reminders = list(
        DueReminder.objects.filter(schema_name=institution.schema_name, object_id__in=ids, kind="reminder_1h")
    )
    DueReminder.objects.filter(pk__in=[r.pk for r in reminders]).update(
        due_at=timezone.now() - timedelta(minutes=1)
    )
    barrier = threading.Barrier(2)

    def dispatch_and_send(_):
        """A whole dispatcher: claim what is due, then send what it claimed (as its tasks would)."""
        try:
            barrier.wait(timeout=30)
            claimed_before = set(
                DueReminder.objects.filter(
                    pk__in=[r.pk for r in reminders], claimed_at__isnull=False
                ).values_list("pk", flat=True)
            )
            reminders_tick()
            mine = (
                set(
                    DueReminder.objects.filter(
                        pk__in=[r.pk for r in reminders], claimed_at__isnull=False
                    ).values_list("pk", flat=True)
                )
                - claimed_before
            )
            with tenant_context(institution):
                for pk in [r.pk for r in reminders]:  # both also try every reminder: the worst case
                    reminder_send(reminder_id=pk)
            return mine
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(dispatch_and_send, range(2)))
    with tenant_context(institution):
        sent = Notification.objects.filter(event=Event.REMINDER_1H, data__booking_id__in=ids)
        per_person = sorted(sent.values_list("recipient_id", "data__booking_id"))
        assert len(per_person) == len(set(per_person)) == 2 * len(ids)  # learner and mentor, once each
