"""Slot generation: DST in three zones, buffers, notice, horizon, limits, overrides, holds, the API."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError
from shared.core.testing import HostClient, host_of, sign_in

from ..models import AvailabilityOverride, Booking, GroupSession, MentorProfile
from ..slots import (
    SLOT_STEP_MINUTES,
    Slot,
    local_instant,
    mentor_next_free_slot_refresh,
    mentor_slots,
    next_free_slot,
    slot_for,
)
from .factories import make_booking, make_learner, make_mentor, next_weekday_at

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def starts(slots: list[Slot]) -> list[datetime]:
    return [slot.starts_at for slot in slots]


def day_slots(mentor: MentorProfile, day_start: datetime, *, minutes: int = 60, hours: int = 24, now=None):
    """Free slots starting in [day_start, day_start + hours)."""
    return starts(
        mentor_slots(
            mentor=mentor,
            minutes=minutes,
            start=day_start,
            end=day_start + timedelta(hours=hours),
            now=now or day_start - timedelta(days=7),
        )
    )


@pytest.fixture
def in_a(institution_a):
    with tenant_context(institution_a):
        yield institution_a


# --- DST -----------------------------------------------------------------------------------------------


def test_london_spring_forward_skips_the_missing_hour(in_a):
    # Sunday 28 March 2027: at 01:00 GMT the clocks go to 02:00 BST.
    mentor = make_mentor(
        in_a,
        timezone_name="Europe/London",
        hours=[(SUN, time(0), time(4)), (SUN, time(9), time(12)), (MON, time(9), time(17))],
    )
    sunday = utc(2027, 3, 28, 0)
    assert day_slots(mentor, sunday, hours=5) == [
        utc(2027, 3, 28, 0, 0),  # 00:00 GMT
        utc(2027, 3, 28, 0, 30),  # 00:30 GMT
        utc(2027, 3, 28, 1, 0),  # 02:00 BST (01:00 and 01:30 never happen)
        utc(2027, 3, 28, 1, 30),  # 02:30 BST
        utc(2027, 3, 28, 2, 0),  # 03:00 BST, ends at 04:00 BST = the end of the window
    ]
    # 09:00–12:00 BST is 08:00–11:00 UTC: three hours, slots on the local :00/:30.
    assert day_slots(mentor, utc(2027, 3, 28, 5), hours=10) == [
        utc(2027, 3, 28, 8, 0),
        utc(2027, 3, 28, 8, 30),
        utc(2027, 3, 28, 9, 0),
        utc(2027, 3, 28, 9, 30),
        utc(2027, 3, 28, 10, 0),
    ]
    # The Sunday before is in GMT: 09:00 local is 09:00 UTC; the Monday after in BST.
    assert day_slots(mentor, utc(2027, 3, 21, 5), hours=10)[0] == utc(2027, 3, 21, 9)
    monday = day_slots(mentor, utc(2027, 3, 29, 0), minutes=30)
    assert monday[0] == utc(2027, 3, 29, 8) and monday[-1] == utc(2027, 3, 29, 15, 30)
    assert len(monday) == 16


def test_london_fall_back_offers_the_repeated_hour_twice(in_a):
    # Sunday 31 October 2027: at 02:00 BST the clocks go back to 01:00 GMT.
    mentor = make_mentor(
        in_a, timezone_name="Europe/London", hours=[(SUN, time(0), time(3)), (MON, time(9), time(17))]
    )
    # 00:00 BST (23:00 UTC on Saturday) to 03:00 GMT: four hours of real time.
    assert day_slots(mentor, utc(2027, 10, 30, 22), hours=6) == [
        utc(2027, 10, 30, 23, 0),  # 00:00 BST
        utc(2027, 10, 30, 23, 30),  # 00:30 BST
        utc(2027, 10, 31, 0, 0),  # 01:00 BST
        utc(2027, 10, 31, 0, 30),  # 01:30 BST
        utc(2027, 10, 31, 1, 0),  # 01:00 GMT
        utc(2027, 10, 31, 1, 30),  # 01:30 GMT
        utc(2027, 10, 31, 2, 0),  # 02:00 GMT, ends 03:00 GMT
    ]
    monday = day_slots(mentor, utc(2027, 11, 1, 0), minutes=30)
    assert monday[0] == utc(2027, 11, 1, 9) and len(monday) == 16


def test_new_york_spring_forward_and_a_window_inside_the_gap(in_a):
    # Sunday 14 March 2027: at 02:00 EST the clocks go to 03:00 EDT.
    mentor = make_mentor(
        in_a,
        timezone_name="America/New_York",
        hours=[(SUN, time(1), time(4)), (SAT, time(9), time(17)), (MON, time(2), time(2, 30))],
    )
    assert day_slots(mentor, utc(2027, 3, 14, 0), minutes=30, hours=12) == [
        utc(2027, 3, 14, 6, 0),  # 01:00 EST
        utc(2027, 3, 14, 6, 30),  # 01:30 EST
        utc(2027, 3, 14, 7, 0),  # 03:00 EDT
        utc(2027, 3, 14, 7, 30),  # 03:30 EDT, ends 04:00 EDT
    ]
    # A window that starts in the gap opens when the gap ends (03:00 EDT).
    with tenant_context(in_a):
        AvailabilityOverride.objects.create(
            mentor=mentor, date=date(2027, 3, 14), kind="off"
        )  # replace Sunday's hours …
        AvailabilityOverride.objects.create(
            mentor=mentor, date=date(2027, 3, 14), kind="extra", start_time=time(2, 30), end_time=time(4)
        )
        AvailabilityOverride.objects.create(
            mentor=mentor, date=date(2027, 3, 14), kind="extra", start_time=time(2), end_time=time(2, 30)
        )  # … and this one lies entirely in the gap: it offers nothing
    assert day_slots(mentor, utc(2027, 3, 14, 0), minutes=30, hours=12) == [
        utc(2027, 3, 14, 7, 0),
        utc(2027, 3, 14, 7, 30),
    ]
    # Saturday before: EST (UTC−5).
    assert day_slots(mentor, utc(2027, 3, 13, 0), minutes=60)[0] == utc(2027, 3, 13, 14)


def test_new_york_fall_back_keeps_a_nine_to_five_day_eight_hours_long(in_a):
    # Sunday 7 November 2027: at 02:00 EDT the clocks go back to 01:00 EST.
    mentor = make_mentor(
        in_a, timezone_name="America/New_York", hours=[(SAT, time(9), time(17)), (SUN, time(9), time(17))]
    )
    saturday = day_slots(mentor, utc(2027, 11, 6, 4), minutes=60)
    sunday = day_slots(mentor, utc(2027, 11, 7, 5), minutes=60)
    assert saturday[0] == utc(2027, 11, 6, 13) and saturday[-1] == utc(2027, 11, 6, 20)  # EDT
    assert sunday[0] == utc(2027, 11, 7, 14) and sunday[-1] == utc(2027, 11, 7, 21)  # EST
    assert len(saturday) == len(sunday) == 15  # 09:00 … 16:00 every half hour


def test_kolkata_has_no_dst_and_a_half_hour_offset(in_a):
    mentor = make_mentor(
        in_a, timezone_name="Asia/Kolkata", hours=[(MON, time(9), time(11)), (TUE, time(9, 15), time(10, 45))]
    )
    # Monday 12 April 2027, 09:00–11:00 IST = 03:30–05:30 UTC.
    assert day_slots(mentor, utc(2027, 4, 11, 18, 30), minutes=30) == [
        utc(2027, 4, 12, 3, 30),
        utc(2027, 4, 12, 4, 0),
        utc(2027, 4, 12, 4, 30),
        utc(2027, 4, 12, 5, 0),
    ]
    # A window starting at 09:15 offers its first slot at 09:30 local.
    assert day_slots(mentor, utc(2027, 4, 12, 18, 30), minutes=30) == [
        utc(2027, 4, 13, 4, 0),
        utc(2027, 4, 13, 4, 30),
    ]


def test_slots_follow_a_quarter_hour_offset_zone(in_a):
    mentor = make_mentor(in_a, timezone_name="Asia/Kathmandu", hours=[(MON, time(9), time(10))])  # UTC+05:45
    assert day_slots(mentor, utc(2027, 4, 11, 18, 15), minutes=30) == [
        utc(2027, 4, 12, 3, 15),
        utc(2027, 4, 12, 3, 45),
    ]


def test_local_instant_resolves_gaps_and_repeats():
    london = ZoneInfo("Europe/London")
    # 01:30 on 28 March 2027 does not exist: it becomes the moment the clocks jump.
    assert local_instant(date(2027, 3, 28), time(1, 30), london) == utc(2027, 3, 28, 1)
    # 01:30 on 31 October 2027 happens twice: first (BST) by default, second (GMT) on request.
    assert local_instant(date(2027, 10, 31), time(1, 30), london) == utc(2027, 10, 31, 0, 30)
    assert local_instant(date(2027, 10, 31), time(1, 30), london, later=True) == utc(2027, 10, 31, 1, 30)


# --- Rules ---------------------------------------------------------------------------------------------

WEDNESDAY = utc(2027, 1, 6, 0)  # Wednesday 6 January 2027
NOW = utc(2027, 1, 1, 12)


@pytest.fixture
def mentor(in_a):
    """A UTC mentor, Wednesdays and Thursdays 09:00–12:00, no notice."""
    return make_mentor(in_a, timezone_name="UTC", hours=[(WED, time(9), time(12)), (THU, time(9), time(12))])


@pytest.fixture
def learner(in_a):
    return make_learner(in_a)


def wednesday(mentor, *, minutes=30, now=NOW) -> list[datetime]:
    return day_slots(mentor, WEDNESDAY, minutes=minutes, now=now)


def at(hour: int, minute: int = 0, day: datetime = WEDNESDAY) -> datetime:
    return day.replace(hour=hour, minute=minute)


def test_a_plain_day_has_every_half_hour_that_fits(mentor):
    assert wednesday(mentor) == [at(9), at(9, 30), at(10), at(10, 30), at(11), at(11, 30)]
    assert wednesday(mentor, minutes=60) == [at(9), at(9, 30), at(10), at(10, 30), at(11)]
    assert all(slot.minutes == 60 for slot in mentor_slots(mentor=mentor, minutes=60, now=NOW))
    assert SLOT_STEP_MINUTES == 30


def test_buffers_remove_the_slots_that_would_crowd_a_booking(mentor, learner):
    mentor.buffer_before_minutes = mentor.buffer_after_minutes = 15
    mentor.save()
    make_booking(mentor, learner, at(10), minutes=30)  # blocked 09:45–10:45
    # A 30-minute slot blocks [start − 15, start + 45): 09:30, 10:00 and 10:30 touch the booking.
    assert wednesday(mentor) == [at(9), at(11), at(11, 30)]


def test_without_buffers_back_to_back_sessions_are_fine(mentor, learner):
    make_booking(mentor, learner, at(10), minutes=30)
    assert wednesday(mentor) == [at(9), at(9, 30), at(10, 30), at(11), at(11, 30)]


def test_minimum_notice_and_horizon(mentor):
    mentor.minimum_notice_minutes = 60
    mentor.booking_horizon_days = 1
    mentor.save()
    now = at(8, 50)
    assert wednesday(mentor, now=now)[0] == at(10)  # 09:50 at the earliest, then the next :00/:30
    thursday = WEDNESDAY + timedelta(days=1)
    everything = starts(mentor_slots(mentor=mentor, minutes=30, now=now))
    # Nothing after now + 1 day (Thursday 08:50), and Thursday opens at 09:00.
    assert everything == [at(10), at(10, 30), at(11), at(11, 30)]
    assert starts(mentor_slots(mentor=mentor, minutes=30, now=at(9, 10))) == [
        at(10, 30),
        at(11),
        at(11, 30),
        at(9, 0, thursday),
    ]


def test_start_and_end_are_clamped_to_notice_and_horizon(mentor):
    mentor.booking_horizon_days = 2
    mentor.save()
    slots = mentor_slots(
        mentor=mentor, minutes=30, start=utc(2020, 1, 1), end=utc(2030, 1, 1), now=at(10, 15)
    )
    assert starts(slots)[0] == at(10, 30)
    assert starts(slots)[-1] == at(11, 30, WEDNESDAY + timedelta(days=1))


def test_the_daily_limit_counts_bookings_and_group_sessions(mentor, learner):
    mentor.max_sessions_per_day = 2
    mentor.save()
    make_booking(mentor, learner, at(9), minutes=30)
    assert len(wednesday(mentor)) == 5  # 09:00 taken; 09:30 … 11:30 left
    GroupSession.objects.create(
        mentor=mentor, title="Office hours", starts_at=at(15), ends_at=at(16), capacity=10, currency="GBP"
    )
    assert wednesday(mentor) == []  # two sessions start on Wednesday: the day is full
    assert day_slots(mentor, WEDNESDAY + timedelta(days=1), minutes=30, now=NOW)[0] == at(
        9, 0, WEDNESDAY + timedelta(1)
    )


def test_a_day_off_replaces_the_week_and_extra_hours_extend_it(mentor):
    AvailabilityOverride.objects.create(mentor=mentor, date=date(2027, 1, 6), kind="off")
    assert wednesday(mentor) == []
    AvailabilityOverride.objects.create(
        mentor=mentor, date=date(2027, 1, 6), kind="extra", start_time=time(14), end_time=time(15)
    )
    assert wednesday(mentor) == [at(14), at(14, 30)]  # a day off with some extra hours
    saturday = utc(2027, 1, 9)
    AvailabilityOverride.objects.create(
        mentor=mentor, date=date(2027, 1, 9), kind="extra", start_time=time(10), end_time=time(11)
    )
    assert day_slots(mentor, saturday, minutes=60, now=NOW) == [at(10, 0, saturday)]
    thursday = utc(2027, 1, 7)
    AvailabilityOverride.objects.create(
        mentor=mentor, date=date(2027, 1, 7), kind="extra", start_time=time(12), end_time=time(13)
    )
    # Extra hours touching the weekly window join it: 11:30–12:30 fits.
    assert at(11, 30, thursday) in day_slots(mentor, thursday, minutes=60, now=NOW)


def test_holds_block_until_they_expire(mentor, learner):
    make_booking(
        mentor, learner, at(9), minutes=30, status=Booking.Status.HELD, hold_expires_at=NOW - timedelta(1)
    )
    make_booking(
        mentor, learner, at(10), minutes=30, status=Booking.Status.HELD, hold_expires_at=NOW + timedelta(1)
    )
    assert wednesday(mentor) == [at(9), at(9, 30), at(10, 30), at(11), at(11, 30)]


def test_only_live_bookings_and_scheduled_group_sessions_block(mentor, learner):
    for status in ("declined", "expired", "cancelled", "rescheduled"):
        make_booking(mentor, learner, at(9), minutes=30, status=status)
    make_booking(mentor, learner, at(10), minutes=30, status=Booking.Status.REQUESTED)
    GroupSession.objects.create(
        mentor=mentor,
        title="Cancelled",
        starts_at=at(11),
        ends_at=at(12),
        capacity=5,
        currency="GBP",
        status="cancelled",
    )
    assert wednesday(mentor) == [at(9), at(9, 30), at(10, 30), at(11), at(11, 30)]
    GroupSession.objects.create(
        mentor=mentor, title="On", starts_at=at(11), ends_at=at(12), capacity=5, currency="GBP"
    )
    assert wednesday(mentor) == [at(9), at(9, 30), at(10, 30)]


def test_group_sessions_are_widened_by_the_buffers(mentor):
    mentor.buffer_after_minutes = 30
    mentor.save()
    GroupSession.objects.create(
        mentor=mentor, title="G", starts_at=at(10), ends_at=at(10, 30), capacity=5, currency="GBP"
    )
    # The group blocks 10:00–11:00, and a 30-minute slot blocks [start, start + 60 min).
    assert wednesday(mentor) == [at(9), at(11), at(11, 30)]


def test_lengths_the_mentor_does_not_offer_are_refused(mentor):
    with pytest.raises(ApplicationError) as raised:
        mentor_slots(mentor=mentor, minutes=45, now=NOW)
    assert raised.value.status == 400 and "30, 60" in raised.value.message
    with pytest.raises(ApplicationError):
        slot_for(mentor=mentor, starts_at=at(9), minutes=45, now=NOW)


def test_slot_for_tells_taken_from_not_offered(mentor, learner):
    slot = slot_for(mentor=mentor, starts_at=at(9), minutes=60, now=NOW)
    assert (slot.starts_at, slot.ends_at, slot.minutes) == (at(9), at(10), 60)
    make_booking(mentor, learner, at(10), minutes=30)
    with pytest.raises(ApplicationError) as taken:
        slot_for(mentor=mentor, starts_at=at(9, 30), minutes=60, now=NOW)
    assert (taken.value.code, taken.value.status) == ("slot_unavailable", 409)
    for starts_at in (at(13), at(9, 15), at(11, 30)):  # outside hours, off the grid, runs past 12:00
        with pytest.raises(ApplicationError) as refused:
            slot_for(mentor=mentor, starts_at=starts_at, minutes=60, now=NOW)
        assert (refused.value.code, refused.value.status) == ("slot_unavailable", 400)
    with pytest.raises(ApplicationError, match="notice"):
        mentor.minimum_notice_minutes = 24 * 60
        slot_for(mentor=mentor, starts_at=at(9), minutes=30, now=at(8))
    with pytest.raises(ApplicationError, match="days ahead"):
        slot_for(mentor=mentor, starts_at=at(9), minutes=30, now=at(9) - timedelta(days=100))


def test_slot_for_reports_a_full_day_as_taken(mentor, learner):
    mentor.max_sessions_per_day = 1
    mentor.save()
    make_booking(mentor, learner, at(11), minutes=30)
    with pytest.raises(ApplicationError) as full:
        slot_for(mentor=mentor, starts_at=at(9), minutes=30, now=NOW)
    assert full.value.status == 409 and "fully booked" in full.value.message


def test_next_free_slot_is_stored_on_the_profile(mentor, learner):
    assert next_free_slot(mentor=mentor, now=NOW) == at(9)
    make_booking(mentor, learner, at(9), minutes=30)
    assert mentor_next_free_slot_refresh(mentor_id=mentor.pk, now=NOW) == at(9, 30)
    mentor.refresh_from_db()
    assert (mentor.next_free_slot_at, mentor.next_free_slot_checked_at) == (at(9, 30), NOW)
    # A full first week: the search goes on through the horizon.
    AvailabilityOverride.objects.create(mentor=mentor, date=date(2027, 1, 6), kind="off")
    AvailabilityOverride.objects.create(mentor=mentor, date=date(2027, 1, 7), kind="off")
    assert next_free_slot(mentor=mentor, now=NOW) == utc(2027, 1, 13, 9)
    mentor.session_lengths = []
    assert next_free_slot(mentor=mentor, now=NOW) is None


def test_the_number_of_queries_does_not_grow_with_bookings(mentor, learner, django_assert_max_num_queries):
    mentor = MentorProfile.objects.select_related("user").get(pk=mentor.pk)
    with CaptureQueriesContext(connection) as few:
        mentor_slots(mentor=mentor, minutes=30, now=NOW)
    for week in range(8):
        for hour in (9, 10, 11):
            make_booking(mentor, learner, at(hour, 0, WEDNESDAY + timedelta(weeks=week)), minutes=30)
            GroupSession.objects.create(
                mentor=mentor,
                title="G",
                starts_at=at(hour, 0, WEDNESDAY + timedelta(weeks=week, days=1)),
                ends_at=at(hour, 30, WEDNESDAY + timedelta(weeks=week, days=1)),
                capacity=3,
                currency="GBP",
            )
    with django_assert_max_num_queries(len(few.captured_queries)):
        slots = mentor_slots(mentor=mentor, minutes=30, now=NOW)
    assert len(few.captured_queries) <= 4
    assert at(9) not in starts(slots) and at(9, 30) in starts(slots)


# --- The API -------------------------------------------------------------------------------------------


def slots_url(mentor_id: int, **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"/api/v1/mentors/{mentor_id}/slots/" + (f"?{query}" if query else "")


@pytest.fixture
def api_a(institution_a):
    mentor = make_mentor(institution_a, email="mo@a.example", timezone_name="Europe/London")
    make_learner(institution_a, email="lee@a.example", timezone="America/New_York")
    client = HostClient(host_of(institution_a))
    sign_in(client, "lee@a.example")
    return client, mentor


def test_the_slots_api_lists_slots_in_three_clocks(api_a):
    client, mentor = api_a
    wednesday = next_weekday_at(0, tz="Asia/Kolkata").date()
    response = client.get(slots_url(mentor.pk, minutes=60, days=1, tz="Asia/Kolkata", **{"from": wednesday}))
    assert response.status_code == 200, response.content
    body = response.json()
    assert {key: body[key] for key in ("mentor_id", "minutes", "mentor_timezone", "viewer_timezone")} == {
        "mentor_id": mentor.pk,
        "minutes": 60,
        "mentor_timezone": "Europe/London",
        "viewer_timezone": "Asia/Kolkata",
    }
    assert body["slots"]
    day_start = local_instant(wednesday, time(0), ZoneInfo("Asia/Kolkata"))
    for slot in body["slots"]:
        starts_at = datetime.fromisoformat(slot["starts_at"])
        assert slot["starts_at"].endswith("Z")
        assert datetime.fromisoformat(slot["ends_at"]) - starts_at == timedelta(hours=1)
        assert slot["viewer_start"].endswith("+05:30")
        assert slot["mentor_start"][-6:] in ("+00:00", "+01:00")
        assert (
            datetime.fromisoformat(slot["viewer_start"])
            == datetime.fromisoformat(slot["mentor_start"])
            == starts_at
        )
        assert day_start <= starts_at < day_start + timedelta(days=1)
    mentor_times = {datetime.fromisoformat(slot["mentor_start"]).strftime("%M") for slot in body["slots"]}
    assert mentor_times <= {"00", "30"}


def test_the_slots_api_defaults_to_the_viewers_zone_and_shortest_length(api_a):
    client, mentor = api_a
    body = client.get(slots_url(mentor.pk)).json()
    assert (body["viewer_timezone"], body["minutes"]) == ("America/New_York", 30)
    assert body["slots"] and body["slots"][0]["viewer_start"][-6:] in ("-05:00", "-04:00")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"days": 63}, "days"),
        ({"days": 0}, "days"),
        ({"days": "many"}, "days"),
        ({"minutes": 45}, "minutes"),
        ({"minutes": "x"}, "minutes"),
        ({"from": "2027-02-30"}, "from"),
    ],
)
def test_bad_slot_queries_get_400_with_the_error_shape(api_a, params, field):
    client, mentor = api_a
    response = client.get(slots_url(mentor.pk, **params))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] and field in error["fields"]


def test_unknown_unapproved_and_anonymous(api_a, institution_a):
    client, mentor = api_a
    assert client.get(slots_url(mentor.pk + 1000)).json()["error"]["code"] == "not_found"
    pending = make_mentor(institution_a, email="pending@a.example")
    with tenant_context(institution_a):
        pending.user.mentor_status = "pending"
        pending.user.save()
    assert client.get(slots_url(pending.pk)).status_code == 404
    anonymous = HostClient(host_of(institution_a)).get(slots_url(mentor.pk))
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_authenticated"


def test_institution_b_never_sees_a_mentor_of_a(institution_a, institution_b):
    with tenant_context(institution_a):
        next_a = (MentorProfile.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    with tenant_context(institution_b):
        next_b = (MentorProfile.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    shared_id = max(next_a, next_b)
    make_mentor(institution_a, pk=shared_id, email="mo@a.example", timezone_name="Asia/Tokyo")
    only_in_a = make_mentor(institution_a, pk=shared_id + 1, email="ma@a.example", timezone_name="Asia/Tokyo")
    make_mentor(institution_b, pk=shared_id, email="mo@b.example", timezone_name="America/Chicago")
    make_learner(institution_b, email="lee@b.example")
    client_b = HostClient(host_of(institution_b))
    sign_in(client_b, "lee@b.example")
    same_id = client_b.get(slots_url(shared_id)).json()
    assert same_id["mentor_timezone"] == "America/Chicago"  # B's own mentor, never A's
    assert client_b.get(slots_url(only_in_a.pk)).status_code == 404
