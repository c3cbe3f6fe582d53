"""Live-room rules: who may join and when, chat, attendance turning into completed / no-show."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError

from .. import groups
from ..live import (
    CLOSE_ENDED,
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_TOO_EARLY,
    CLOSE_UNAUTHENTICATED,
    RoomRefused,
    attendance_end,
    attendance_settle,
    attendance_start,
    chat_history,
    chat_post,
    room_join,
)
from ..models import Attendance, Booking
from .factories import make_booking, make_learner, make_mentor


@pytest.fixture
def people(institution_a):
    mentor = make_mentor(institution_a, email="mo@a.example")
    learner = make_learner(institution_a, email="lee@a.example")
    stranger = make_learner(institution_a, email="sid@a.example")
    with tenant_context(institution_a):
        yield mentor, learner, stranger


def booking_in(mentor, learner, minutes_from_now: int, **fields) -> Booking:
    return make_booking(mentor, learner, timezone.now() + timedelta(minutes=minutes_from_now), **fields)


def refusal(**kwargs) -> RoomRefused:
    with pytest.raises(RoomRefused) as error:
        room_join(**kwargs)
    return error.value


def test_participants_join_inside_the_window(people):
    mentor, learner, _ = people
    booking = booking_in(mentor, learner, 5)
    room = room_join(user=learner, kind="booking", room_id=booking.pk)
    assert room.group == f"{connection.schema_name}.booking.{booking.pk}"
    assert set(room.participants) == {mentor.user_id, learner.pk}
    assert room_join(user=mentor.user, kind="booking", room_id=booking.pk).mentor_id == mentor.user_id


def test_the_window_opens_ten_minutes_before_and_closes_thirty_after(people, settings):
    mentor, learner, _ = people
    early = booking_in(mentor, learner, 11)
    assert refusal(user=learner, kind="booking", room_id=early.pk).close_code == CLOSE_TOO_EARLY
    just_open = booking_in(mentor, learner, 9 + 60)
    now = just_open.starts_at - timedelta(minutes=9)
    assert room_join(user=learner, kind="booking", room_id=just_open.pk, now=now)
    late = just_open.ends_at + timedelta(minutes=31)
    assert refusal(user=learner, kind="booking", room_id=just_open.pk, now=late).close_code == CLOSE_ENDED
    settings.LIVE_ROOM_CLOSES_MINUTES_AFTER = 60
    assert room_join(user=learner, kind="booking", room_id=just_open.pk, now=late)


def test_others_are_refused_without_learning_anything(people):
    mentor, learner, stranger = people
    booking = booking_in(mentor, learner, 0)
    from django.contrib.auth.models import AnonymousUser

    assert (
        refusal(user=AnonymousUser(), kind="booking", room_id=booking.pk).close_code == CLOSE_UNAUTHENTICATED
    )
    not_mine = refusal(user=stranger, kind="booking", room_id=booking.pk)
    missing = refusal(user=stranger, kind="booking", room_id=999_999)
    assert not_mine.close_code == missing.close_code == CLOSE_NOT_FOUND
    assert not_mine.message == missing.message


def test_only_confirmed_sessions_have_an_open_room(people):
    mentor, learner, _ = people
    booking = booking_in(mentor, learner, 0, status=Booking.Status.CANCELLED)
    assert refusal(user=learner, kind="booking", room_id=booking.pk).close_code == CLOSE_FORBIDDEN


def test_group_rooms_admit_the_mentor_and_enrolled_learners(people):
    mentor, learner, stranger = people
    session = groups.group_session_create(
        mentor=mentor, title="Clinic", starts_at=timezone.now() + timedelta(minutes=5), minutes=60, capacity=1
    )
    groups.enrollment_create(group_session=session, learner=learner)
    groups.enrollment_create(group_session=session, learner=stranger)  # waitlisted
    room = room_join(user=learner, kind="group", room_id=session.pk)
    assert room.group.endswith(f".group.{session.pk}")
    assert room_join(user=mentor.user, kind="group", room_id=session.pk)
    assert refusal(user=stranger, kind="group", room_id=session.pk).close_code == CLOSE_NOT_FOUND


def test_chat_is_stored_and_replayed_in_order(people):
    mentor, learner, _ = people
    room = room_join(user=learner, kind="booking", room_id=booking_in(mentor, learner, 0).pk)
    chat_post(room=room, user=learner, body="  Hello!  ")
    chat_post(room=room, user=mentor.user, body="Hi Lee")
    history = chat_history(room=room)
    assert [(m["author_name"], m["body"]) for m in history] == [
        ("Lee Learner", "Hello!"),
        ("Mo Mentor", "Hi Lee"),
    ]
    for body in ("", "   ", "x" * 2001):
        with pytest.raises(ApplicationError):
            chat_post(room=room, user=learner, body=body)


def test_attendance_decides_completed_or_no_show(people):
    mentor, learner, _ = people
    both = booking_in(mentor, learner, -120)
    mentor_only = booking_in(mentor, learner, -240)
    nobody = booking_in(mentor, learner, -360)
    for booking, users in ((both, [mentor.user, learner]), (mentor_only, [mentor.user])):
        room = room_join(user=mentor.user, kind="booking", room_id=booking.pk, now=booking.starts_at)
        for user in users:
            attendance_end(attendance_id=attendance_start(room=room, user=user))
    assert Attendance.objects.filter(booking=both, left_at__isnull=False).count() == 2
    assert attendance_settle(booking=both).status == "completed"
    assert attendance_settle(booking=mentor_only).status == "no_show"
    assert attendance_settle(booking=nobody) is None
    # Not before the room has closed.
    ongoing = booking_in(mentor, learner, -10)
    assert attendance_settle(booking=ongoing) is None


def test_the_dashboard_settles_closed_sessions_from_attendance(people):
    from ..bookings import mentor_sessions

    mentor, learner, _ = people
    booking = booking_in(mentor, learner, -180)
    room = room_join(user=learner, kind="booking", room_id=booking.pk, now=booking.starts_at)
    attendance_start(room=room, user=learner)
    attendance_start(room=room, user=mentor.user)
    sessions = mentor_sessions(mentor=mentor)
    booking.refresh_from_db()
    assert booking.status == "completed"
    assert booking in sessions["past"]
