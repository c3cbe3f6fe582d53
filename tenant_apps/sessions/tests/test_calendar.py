"""Calendar files: a session's .ics, and the private, revocable feed of a person's sessions."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context
from icalendar import Calendar

from shared.core.testing import HostClient, host_of, sign_in
from tenant_apps.sessions.calendar import booking_ics, calendar_feed_ics, calendar_feed_reset
from tenant_apps.sessions.models import Booking, CalendarFeed, Enrollment, GroupSession

from .factories import make_booking, make_learner, make_mentor, next_weekday_at

NEW_YORK = "America/New_York"


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["message"]
    return body["error"]


def signed_in(institution, email: str) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, email)
    return client


@pytest.fixture
def scene(institution_a):
    """A New York mentor, their learner (Lee) and another learner (Oz), one confirmed session."""
    mentor = make_mentor(institution_a, email="mo@example.org", full_name="Mo Mentor", timezone_name=NEW_YORK)
    lee = make_learner(institution_a, email="lee@example.org", full_name="Lee Learner", timezone="Asia/Tokyo")
    oz = make_learner(institution_a, email="oz@example.org", full_name="Oz Other")
    starts_at = next_weekday_at(10, tz=NEW_YORK)
    with tenant_context(institution_a):
        booking = make_booking(mentor, lee, starts_at, minutes=60, topic="Career change into data science")
    return {"mentor": mentor, "lee": lee, "oz": oz, "booking": booking, "starts_at": starts_at}


def parse(content: bytes) -> Calendar:
    return Calendar.from_ical(content)


def uids(content: bytes) -> set[str]:
    return {str(event["UID"]) for event in parse(content).events}


# --- One session's .ics ------------------------------------------------------------------------


def test_booking_ics_is_in_the_mentors_time_zone_with_its_definition(institution_a, scene):
    booking = scene["booking"]
    client = signed_in(institution_a, "lee@example.org")
    response = client.get(f"/sessions/{booking.pk}/calendar.ics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="peerlearn-session-{booking.pk}.ics"'

    calendar = parse(response.content)
    assert [tz.tz_name for tz in calendar.timezones] == [NEW_YORK]
    assert calendar.get_missing_tzids() == set()
    (event,) = calendar.events
    assert event["DTSTART"].params["TZID"] == NEW_YORK
    assert event["DTEND"].params["TZID"] == NEW_YORK
    assert event.start == scene["starts_at"]
    assert event.start.tzinfo == ZoneInfo(NEW_YORK)
    assert (event.start.hour, event.start.minute) == (10, 0)
    assert event.end - event.start == timedelta(minutes=60)
    assert str(event["UID"]) == f"booking-{booking.pk}@{host_of(institution_a)}"
    assert str(event["SUMMARY"]) == "Mentoring: Lee Learner with Mo Mentor"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert "Career change into data science" in str(event["DESCRIPTION"])
    assert f"://{host_of(institution_a)}/sessions/{booking.pk}/" in str(event["DESCRIPTION"])
    assert str(event["ORGANIZER"]) == "mailto:mo@example.org"
    assert str(event["ATTENDEE"]) == "mailto:lee@example.org"
    assert "DTSTAMP" in event

    # The mentor gets the same event, with the same UID (calendar apps update it, not duplicate it).
    again = signed_in(institution_a, "mo@example.org").get(f"/sessions/{booking.pk}/calendar.ics")
    assert uids(again.content) == {f"booking-{booking.pk}@{host_of(institution_a)}"}


def test_booking_ics_status_follows_the_booking(institution_a, scene):
    with tenant_context(institution_a):
        booking = Booking.objects.select_related("mentor__user", "learner").get(pk=scene["booking"].pk)
        booking.status = Booking.Status.CANCELLED
        (event,) = parse(booking_ics(booking=booking)).events
    assert str(event["STATUS"]) == "CANCELLED"
    connection.set_schema_to_public()


def test_booking_ics_only_for_participants_of_a_confirmed_session(institution_a, institution_b, scene):
    booking = scene["booking"]
    url = f"/sessions/{booking.pk}/calendar.ics"
    assert signed_in(institution_a, "oz@example.org").get(url).status_code == 404
    assert signed_in(institution_a, "mo@example.org").get(url).status_code == 200
    anonymous = HostClient(host_of(institution_a)).get(url)
    assert anonymous.status_code == 302
    assert "/accounts/login/" in anonymous["Location"]

    with tenant_context(institution_a):
        Booking.objects.filter(pk=booking.pk).update(status=Booking.Status.REQUESTED)
    assert signed_in(institution_a, "lee@example.org").get(url).status_code == 404

    # B's host: A's booking does not exist there, even for a person with the same email.
    make_learner(institution_b, email="lee@example.org")
    assert signed_in(institution_b, "lee@example.org").get(url).status_code == 404


# --- The private feed --------------------------------------------------------------------------


def test_the_feed_lists_only_the_users_own_sessions(institution_a, scene):
    mentor, lee, oz = scene["mentor"], scene["lee"], scene["oz"]
    other_mentor = make_mentor(institution_a, email="ann@example.org", full_name="Ann Other")
    now = timezone.now()
    with tenant_context(institution_a):
        own = scene["booking"]
        own_recent = make_booking(mentor, lee, now - timedelta(days=10), status=Booking.Status.COMPLETED)
        own_old = make_booking(mentor, lee, now - timedelta(days=45), status=Booking.Status.COMPLETED)
        own_cancelled = make_booking(mentor, lee, scene["starts_at"] + timedelta(days=1), status="cancelled")
        own_expired_hold = make_booking(
            mentor,
            lee,
            scene["starts_at"] + timedelta(days=2),
            status="held",
            hold_expires_at=now - timedelta(minutes=1),
        )
        own_live_hold = make_booking(
            mentor,
            lee,
            scene["starts_at"] + timedelta(days=3),
            status="held",
            hold_expires_at=now + timedelta(minutes=9),
        )
        others = make_booking(mentor, oz, scene["starts_at"] + timedelta(hours=2))
        strangers = make_booking(other_mentor, oz, scene["starts_at"])
        enrolled = GroupSession.objects.create(
            mentor=other_mentor,
            title="SQL clinic",
            starts_at=scene["starts_at"] + timedelta(days=4),
            ends_at=scene["starts_at"] + timedelta(days=4, hours=1),
            capacity=10,
            currency="GBP",
        )
        Enrollment.objects.create(group_session=enrolled, learner=lee, status=Enrollment.Status.ENROLLED)
        not_enrolled = GroupSession.objects.create(
            mentor=other_mentor,
            title="Stats",
            starts_at=scene["starts_at"] + timedelta(days=5),
            ends_at=scene["starts_at"] + timedelta(days=5, hours=1),
            capacity=10,
            currency="GBP",
        )
        Enrollment.objects.create(group_session=not_enrolled, learner=oz, status=Enrollment.Status.ENROLLED)
        runs = GroupSession.objects.create(
            mentor=mentor,
            title="Portfolio review",
            starts_at=scene["starts_at"] + timedelta(days=6),
            ends_at=scene["starts_at"] + timedelta(days=6, hours=1),
            capacity=10,
            currency="GBP",
        )
        lee_feed = calendar_feed_reset(user=lee).token
        mentor_feed = calendar_feed_reset(user=mentor.user).token
    connection.set_schema_to_public()

    host = host_of(institution_a)
    calendar_app = HostClient(host)  # no session: calendar apps just fetch the URL
    response = calendar_app.get(f"/calendar/{lee_feed}.ics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert uids(response.content) == {
        f"booking-{own.pk}@{host}",
        f"booking-{own_recent.pk}@{host}",
        f"booking-{own_live_hold.pk}@{host}",
        f"group-{enrolled.pk}@{host}",
    }
    calendar = parse(response.content)
    assert calendar.get_missing_tzids() == set()
    assert str(calendar["X-WR-CALNAME"]) == f"{institution_a.name} sessions"
    assert not {own_old.pk, own_cancelled.pk, own_expired_hold.pk, others.pk, strangers.pk} & {
        int(uid.split("@")[0].split("-")[1]) for uid in uids(response.content) if uid.startswith("booking-")
    }

    mentor_uids = uids(calendar_app.get(f"/calendar/{mentor_feed}.ics").content)
    assert f"booking-{others.pk}@{host}" in mentor_uids
    assert f"group-{runs.pk}@{host}" in mentor_uids
    assert f"booking-{strangers.pk}@{host}" not in mentor_uids
    assert f"group-{enrolled.pk}@{host}" not in mentor_uids


def test_the_feed_costs_the_same_queries_for_many_sessions(
    institution_a, scene, django_assert_max_num_queries
):
    mentor, lee = scene["mentor"], scene["lee"]
    with tenant_context(institution_a):
        token = calendar_feed_reset(user=lee).token
    client = HostClient(host_of(institution_a))
    client.get(f"/calendar/{token}.ics")  # the host is now known to this process
    # 6: the feed's own queries, and the institution's subscription (is the site open?).
    with django_assert_max_num_queries(6):
        few = client.get(f"/calendar/{token}.ics")
    with tenant_context(institution_a):
        for day in range(1, 30):
            make_booking(mentor, lee, scene["starts_at"] + timedelta(days=day))
    connection.set_schema_to_public()
    with django_assert_max_num_queries(6):
        many = client.get(f"/calendar/{token}.ics")
    assert len(parse(few.content).events) == 1
    assert len(parse(many.content).events) == 30


def test_feed_page_create_reset_and_turn_off(institution_a, scene):
    client = signed_in(institution_a, "lee@example.org")
    page = client.get("/calendar/")
    assert page.status_code == 200
    assert "Create my calendar address" in page.content.decode()
    assert page["Referrer-Policy"] == "no-referrer"

    assert client.post("/calendar/reset/").status_code == 302
    with tenant_context(institution_a):
        first = CalendarFeed.objects.get(user=scene["lee"]).token
    page = client.get("/calendar/").content.decode()
    assert f"webcal://{host_of(institution_a)}/calendar/{first}.ics" in page
    assert f"/calendar/{first}.ics" in page
    calendar_app = HostClient(host_of(institution_a))
    assert calendar_app.get(f"/calendar/{first}.ics").status_code == 200
    assert calendar_app.head(f"/calendar/{first}.ics").status_code == 200

    client.post("/calendar/reset/")
    with tenant_context(institution_a):
        second = CalendarFeed.objects.get(user=scene["lee"]).token
    assert second != first
    assert calendar_app.get(f"/calendar/{first}.ics").status_code == 404
    assert calendar_app.get(f"/calendar/{second}.ics").status_code == 200

    client.post("/calendar/revoke/")
    assert calendar_app.get(f"/calendar/{second}.ics").status_code == 404
    assert "Create my calendar address" in client.get("/calendar/").content.decode()
    # Changing the feed needs POST (and a signed-in person).
    assert client.get("/calendar/reset/").status_code == 405
    assert HostClient(host_of(institution_a)).post("/calendar/reset/").status_code == 302
    connection.set_schema_to_public()


def test_a_feed_token_of_a_means_nothing_on_b(institution_a, institution_b, scene):
    with tenant_context(institution_a):
        token = calendar_feed_reset(user=scene["lee"]).token
    connection.set_schema_to_public()
    assert HostClient(host_of(institution_a)).get(f"/calendar/{token}.ics").status_code == 200
    assert HostClient(host_of(institution_b)).get(f"/calendar/{token}.ics").status_code == 404


def test_huge_ids_are_404_not_500(institution_a, scene):
    client = signed_in(institution_a, "lee@example.org")
    huge = "9" * 30
    assert client.get(f"/sessions/{huge}/calendar.ics").status_code == 404
    assert client.get(f"/api/v1/bookings/{huge}/calendar.ics").status_code == 404


@pytest.mark.parametrize("token", ["nope", "x" * 200, "a" * 32, "%00", "..%2f..%2fetc", "' or 1=1 --"])
def test_unknown_or_malformed_tokens_are_404(institution_a, token):
    assert HostClient(host_of(institution_a)).get(f"/calendar/{token}.ics").status_code == 404


def test_a_deactivated_persons_feed_stops(institution_a, scene):
    with tenant_context(institution_a):
        token = calendar_feed_reset(user=scene["lee"]).token
        scene["lee"].is_active = False
        scene["lee"].save(update_fields=["is_active"])
    connection.set_schema_to_public()
    assert HostClient(host_of(institution_a)).get(f"/calendar/{token}.ics").status_code == 404


def test_feed_service_lists_group_sessions_in_the_mentors_zone(institution_a, scene):
    with tenant_context(institution_a):
        group = GroupSession.objects.create(
            mentor=scene["mentor"],
            title="Portfolio review",
            starts_at=scene["starts_at"] + timedelta(days=1),
            ends_at=scene["starts_at"] + timedelta(days=1, hours=1),
            capacity=5,
            currency="GBP",
        )
        Enrollment.objects.create(group_session=group, learner=scene["oz"], status=Enrollment.Status.ENROLLED)
        (event,) = parse(calendar_feed_ics(user=scene["oz"])).events
    assert str(event["SUMMARY"]) == "Group session: Portfolio review with Mo Mentor"
    assert event["DTSTART"].params["TZID"] == NEW_YORK
    assert event.start == group.starts_at
    connection.set_schema_to_public()


# --- API ---------------------------------------------------------------------------------------


def test_api_booking_ics(institution_a, institution_b, scene):
    booking = scene["booking"]
    url = f"/api/v1/bookings/{booking.pk}/calendar.ics"
    lee = signed_in(institution_a, "lee@example.org")
    response = lee.get(url, HTTP_ACCEPT="text/calendar")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert uids(response.content) == {f"booking-{booking.pk}@{host_of(institution_a)}"}

    other = signed_in(institution_a, "oz@example.org").get(url, HTTP_ACCEPT="text/calendar")
    assert other.status_code == 404
    assert error_of(other)["code"] == "not_found"

    anonymous = HostClient(host_of(institution_a)).get(url)
    assert anonymous.status_code == 401
    assert error_of(anonymous)["code"] == "not_authenticated"

    make_learner(institution_b, email="lee@example.org")
    assert signed_in(institution_b, "lee@example.org").get(url).status_code == 404


def test_api_my_calendar_feed(institution_a, institution_b, scene):
    client = signed_in(institution_a, "lee@example.org")
    url = "/api/v1/me/calendar-feed/"
    assert client.get(url).json() == {"url": None, "webcal_url": None}

    created = client.post(url)
    assert created.status_code == 200
    feed_url = created.json()["url"]
    assert feed_url.endswith(".ics")
    assert created.json()["webcal_url"].startswith(f"webcal://{host_of(institution_a)}/calendar/")
    assert client.get(url).json()["url"] == feed_url
    path = feed_url.split(host_of(institution_a), 1)[1]
    calendar_app = HostClient(host_of(institution_a))
    assert calendar_app.get(path).status_code == 200
    assert HostClient(host_of(institution_b)).get(path).status_code == 404

    reset = client.post(url).json()["url"]
    assert reset != feed_url
    assert calendar_app.get(path).status_code == 404

    revoked = client.delete(url)
    assert revoked.status_code == 200
    assert revoked.json()["url"] is None
    assert calendar_app.get(reset.split(host_of(institution_a), 1)[1]).status_code == 404

    for method in ("get", "post", "delete"):
        anonymous = getattr(HostClient(host_of(institution_a)), method)(url)
        assert anonymous.status_code == 401
        assert error_of(anonymous)["code"] == "not_authenticated"
