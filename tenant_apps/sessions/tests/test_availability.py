"""Editing availability: the services, the editor page and the /me/availability API, with isolation."""

from datetime import date, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError
from shared.core.testing import HostClient, host_of, make_user, sign_in
from tenant_apps.accounts.models import User

from ..availability import (
    availability_override_add,
    availability_override_remove,
    mentor_calendar_update,
    mentor_profile_ensure,
    weekly_hours_replace,
)
from ..models import AvailabilityOverride, MentorProfile, WeeklyAvailability
from .factories import make_booking, make_learner, make_mentor

EVERY_DAY = [(day, time(9), time(17)) for day in range(7)]
RULES = {
    "buffer_before_minutes": 10,
    "buffer_after_minutes": 5,
    "minimum_notice_minutes": 120,
    "booking_horizon_days": 30,
    "max_sessions_per_day": 4,
    "requires_approval": True,
}


def tomorrow() -> date:
    return timezone.now().date() + timedelta(days=2)


@pytest.fixture
def mentor(institution_a):
    mentor = make_mentor(institution_a, email="mo@a.example", hours=EVERY_DAY)
    with tenant_context(institution_a):
        yield MentorProfile.objects.select_related("user").get(pk=mentor.pk)


# --- Services ------------------------------------------------------------------------------------------


def test_weekly_hours_are_replaced_and_the_next_free_slot_refreshed(mentor):
    assert mentor.next_free_slot_at is None  # the factory writes rows directly
    rows = weekly_hours_replace(
        mentor=mentor, hours=[(0, time(9), time(12)), (0, time(13), time(17)), (4, time(8), time(9))]
    )
    assert [(r.weekday, r.start_time, r.end_time) for r in rows] == [
        (0, time(9), time(12)),
        (0, time(13), time(17)),
        (4, time(8), time(9)),
    ]
    assert WeeklyAvailability.objects.filter(mentor=mentor).count() == 3
    mentor.refresh_from_db()
    assert mentor.next_free_slot_at is not None and mentor.next_free_slot_checked_at is not None
    weekly_hours_replace(mentor=mentor, hours=[])
    mentor.refresh_from_db()
    assert mentor.next_free_slot_at is None and not WeeklyAvailability.objects.filter(mentor=mentor).exists()


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ([(0, time(12), time(9))], "Monday: the end (09:00) must be after the start (12:00)."),
        ([(0, time(9), time(9))], "must be after"),
        ([(2, time(9), time(12)), (2, time(11), time(13))], "Wednesday: 09:00–12:00 overlaps 11:00–13:00."),
        ([(7, time(9), time(12))], "is not a weekday"),
        ([(-1, time(9), time(12))], "is not a weekday"),
    ],
)
def test_bad_weekly_hours_are_refused_and_nothing_changes(mentor, hours, message):
    with pytest.raises(ApplicationError) as refused:
        weekly_hours_replace(mentor=mentor, hours=hours)
    assert refused.value.status == 400
    assert any(message in text for text in refused.value.fields["hours"])
    assert WeeklyAvailability.objects.filter(mentor=mentor).count() == 7


def test_touching_ranges_are_allowed(mentor):
    weekly_hours_replace(mentor=mentor, hours=[(1, time(9), time(12)), (1, time(12), time(14))])
    assert WeeklyAvailability.objects.filter(mentor=mentor).count() == 2


def test_calendar_rules_are_validated_per_field(mentor):
    updated = mentor_calendar_update(mentor=mentor, **RULES)
    assert updated.booking_horizon_days == 30 and updated.requires_approval
    with pytest.raises(ApplicationError) as refused:
        mentor_calendar_update(
            mentor=mentor, **{**RULES, "buffer_before_minutes": 500, "booking_horizon_days": 0}
        )
    assert set(refused.value.fields) == {"buffer_before_minutes", "booking_horizon_days"}
    mentor.refresh_from_db()
    assert (mentor.buffer_before_minutes, mentor.booking_horizon_days) == (10, 30)
    with pytest.raises(ApplicationError) as missing:
        mentor_calendar_update(mentor=mentor, **{**RULES, "max_sessions_per_day": None})
    assert missing.value.fields == {"max_sessions_per_day": ["Give a whole number."]}


def test_overrides_are_checked(mentor):
    day = tomorrow()
    off = availability_override_add(mentor=mentor, date=day, kind="off")
    extra = availability_override_add(
        mentor=mentor, date=day, kind="extra", start_time=time(18), end_time=time(20)
    )
    assert (off.kind, extra.start_time) == ("off", time(18))
    cases = [
        ({"kind": "off"}, "date", "already a day off"),
        ({"kind": "off", "start_time": time(9)}, "start_time", "whole day"),
        ({"kind": "extra", "start_time": time(19), "end_time": time(21)}, "start_time", "overlap"),
        ({"kind": "extra", "start_time": time(9)}, "end_time", "end"),
        ({"kind": "extra", "start_time": time(9), "end_time": time(8)}, "end_time", "after the start"),
        ({"kind": "sometimes"}, "kind", "Choose"),
        ({"kind": "off", "date": day - timedelta(days=7)}, "date", "today or a later date"),
    ]
    for values, field, text in cases:
        values = {"date": day, **values}
        with pytest.raises(ApplicationError) as refused:
            availability_override_add(mentor=mentor, **values)
        assert text in " ".join(refused.value.fields[field]), values
    availability_override_remove(mentor=mentor, override_id=off.pk)
    with pytest.raises(ApplicationError) as gone:
        availability_override_remove(mentor=mentor, override_id=off.pk)
    assert (gone.value.status, gone.value.code) == (404, "not_found")


def test_an_override_of_another_mentor_cannot_be_removed(mentor, institution_a):
    other = make_mentor(institution_a, email="other@a.example")
    theirs = availability_override_add(mentor=other, date=tomorrow(), kind="off")
    with pytest.raises(ApplicationError):
        availability_override_remove(mentor=mentor, override_id=theirs.pk)
    assert AvailabilityOverride.objects.filter(pk=theirs.pk).exists()


def test_a_profile_is_created_for_an_approved_mentor_only(institution_a):
    newcomer = make_user(institution_a, role=User.Role.MENTOR, mentor_status=User.MentorStatus.APPROVED)
    learner = make_learner(institution_a)
    with tenant_context(institution_a):
        profile = mentor_profile_ensure(user=newcomer)
        profile.refresh_from_db()
        assert profile.session_lengths == [30, 60] and profile.search_document is not None
        assert mentor_profile_ensure(user=newcomer).pk == profile.pk
        with pytest.raises(ApplicationError) as refused:
            mentor_profile_ensure(user=learner)
        assert refused.value.status == 403


# --- The editor page -----------------------------------------------------------------------------------

PAGE = "/mentor/availability/"


@pytest.fixture
def mentor_client(institution_a):
    make_user(
        institution_a,
        email="new@a.example",
        role=User.Role.MENTOR,
        mentor_status=User.MentorStatus.APPROVED,
        timezone="Asia/Kolkata",
    )
    client = HostClient(host_of(institution_a))
    sign_in(client, "new@a.example")
    return client


def hours_post(**rows) -> dict:
    return {"action": "hours", **rows}


def test_a_mentor_saves_weekly_hours_and_sees_the_preview(mentor_client, institution_a):
    first = mentor_client.get(PAGE)
    assert first.status_code == 200
    page = first.content.decode()
    assert "Asia/Kolkata" in page and "Weekly hours" in page and "No free slots" in page
    with tenant_context(institution_a):
        assert MentorProfile.objects.filter(user__email="new@a.example").exists()  # made on first visit

    data = {"action": "hours"}
    for day in range(7):
        data |= {
            f"d{day}_0_start": "09:00",
            f"d{day}_0_end": "12:00",
            f"d{day}_1_start": "",
            f"d{day}_1_end": "",
        }
    data |= {"d0_1_start": "14:00", "d0_1_end": "16:30"}
    response = mentor_client.post(PAGE, data)
    assert response.status_code == 302
    page = mentor_client.get(PAGE).content.decode()
    assert "Your weekly hours are saved." in page
    preview = page[page.index('data-testid="preview"') :]
    assert "No free slots" not in preview and "11:30" in preview  # the last 30-minute slot of a morning
    with tenant_context(institution_a):
        hours = set(
            WeeklyAvailability.objects.filter(mentor__user__email="new@a.example").values_list(
                "weekday", "start_time", "end_time"
            )
        )
    assert (0, time(14), time(16, 30)) in hours and len(hours) == 8
    assert 'value="14:00"' in page  # saved ranges are shown for editing

    # Ticking "Remove" drops a range.
    response = mentor_client.post(PAGE, {**data, "d0_1_remove": "on"})
    assert response.status_code == 302
    with tenant_context(institution_a):
        assert WeeklyAvailability.objects.filter(mentor__user__email="new@a.example").count() == 7


def test_overlapping_ranges_are_a_form_error(mentor_client, institution_a):
    mentor_client.get(PAGE)
    response = mentor_client.post(
        PAGE, hours_post(d2_0_start="09:00", d2_0_end="12:00", d2_1_start="11:00", d2_1_end="13:00")
    )
    assert response.status_code == 400
    assert "Wednesday: 09:00–12:00 overlaps 11:00–13:00." in response.content.decode()
    half = mentor_client.post(PAGE, hours_post(d2_0_start="09:00", d2_0_end=""))
    assert half.status_code == 400 and "Give the end of this range too." in half.content.decode()
    junk = mentor_client.post(PAGE, hours_post(d2_0_start="nine", d2_0_end="10:00"))
    assert junk.status_code == 400
    with tenant_context(institution_a):
        assert not WeeklyAvailability.objects.filter(mentor__user__email="new@a.example").exists()


def test_rules_and_overrides_on_the_page(mentor_client, institution_a):
    mentor_client.get(PAGE)
    saved = mentor_client.post(PAGE, {"action": "rules", **RULES, "requires_approval": "on"})
    assert saved.status_code == 302
    refused = mentor_client.post(PAGE, {"action": "rules", **RULES, "booking_horizon_days": 400})
    assert refused.status_code == 400 and "365" in refused.content.decode()
    with tenant_context(institution_a):
        profile = MentorProfile.objects.get(user__email="new@a.example")
    assert (profile.booking_horizon_days, profile.requires_approval) == (30, True)

    day = tomorrow().isoformat()
    assert mentor_client.post(PAGE, {"action": "override_add", "date": day, "kind": "off"}).status_code == 302
    bad = mentor_client.post(
        PAGE, {"action": "override_add", "date": day, "kind": "extra", "start_time": "10:00"}
    )
    assert bad.status_code == 400 and "Give the end of the extra hours." in bad.content.decode()
    with tenant_context(institution_a):
        override = AvailabilityOverride.objects.get(mentor=profile)
    assert f'data-testid="override-{override.pk}"' in mentor_client.get(PAGE).content.decode()
    removed = mentor_client.post(PAGE, {"action": "override_remove", "override_id": override.pk}, follow=True)
    assert "The date override is removed." in removed.content.decode()
    again = mentor_client.post(PAGE, {"action": "override_remove", "override_id": "x"}, follow=True)
    assert "does not exist" in again.content.decode()


def test_learners_and_pending_mentors_get_403_and_anonymous_a_sign_in(institution_a):
    make_learner(institution_a, email="lee@a.example")
    make_user(institution_a, email="pending@a.example", role=User.Role.MENTOR, mentor_status="pending")
    for email in ("lee@a.example", "pending@a.example"):
        client = HostClient(host_of(institution_a))
        sign_in(client, email)
        response = client.get(PAGE)
        assert response.status_code == 403
        assert "Only approved mentors" in response.content.decode()
        assert client.post(PAGE, hours_post(d0_0_start="09:00", d0_0_end="10:00")).status_code == 403
    anonymous = HostClient(host_of(institution_a)).get(PAGE)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    with tenant_context(institution_a):
        assert not MentorProfile.objects.exists()


def test_a_mentor_of_b_cannot_remove_an_override_of_a(institution_a, institution_b, mentor):
    with tenant_context(institution_a):
        override = availability_override_add(mentor=mentor, date=tomorrow(), kind="off")
    make_mentor(institution_b, email="mo@b.example")
    client_b = HostClient(host_of(institution_b))
    sign_in(client_b, "mo@b.example")
    response = client_b.post(PAGE, {"action": "override_remove", "override_id": override.pk}, follow=True)
    assert "does not exist" in response.content.decode()
    assert client_b.delete(f"/api/v1/me/availability/overrides/{override.pk}/").status_code == 404
    with tenant_context(institution_a):
        assert AvailabilityOverride.objects.filter(pk=override.pk).exists()


def test_the_page_costs_the_same_queries_with_many_rows(mentor, institution_a, django_assert_max_num_queries):
    client = HostClient(host_of(institution_a))
    sign_in(client, "mo@a.example")
    client.get(PAGE)
    with CaptureQueriesContext(connection) as few:
        assert client.get(PAGE).status_code == 200
    learner = make_learner(institution_a)
    with tenant_context(institution_a):
        for n in range(1, 15):
            AvailabilityOverride.objects.create(
                mentor=mentor, date=tomorrow() + timedelta(days=n), kind="off"
            )
        start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=20)
        for n in range(10):
            make_booking(mentor, learner, start + timedelta(hours=n))
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(PAGE).status_code == 200


# --- The API -------------------------------------------------------------------------------------------

API = "/api/v1/me/availability/"


@pytest.fixture
def mentor_api(mentor, institution_a):
    client = HostClient(host_of(institution_a))
    sign_in(client, "mo@a.example")
    return client


def test_get_my_availability(mentor_api, mentor):
    body = mentor_api.get(API).json()
    assert body["mentor_id"] == mentor.pk and body["timezone"] == "UTC"
    assert body["weekly_hours"][0] == {"weekday": 0, "start_time": "09:00", "end_time": "17:00"}
    assert len(body["weekly_hours"]) == 7 and body["overrides"] == []
    assert body["minimum_notice_minutes"] == 0 and body["session_lengths"] == [30, 60]


def test_put_replaces_rules_and_hours_together(mentor_api, mentor):
    payload = {**RULES, "weekly_hours": [{"weekday": 1, "start_time": "10:00", "end_time": "11:30"}]}
    response = mentor_api.put(API, payload, content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["weekly_hours"] == [{"weekday": 1, "start_time": "10:00", "end_time": "11:30"}]
    assert body["buffer_before_minutes"] == 10 and body["requires_approval"] is True
    assert body["next_free_slot_at"] is not None

    bad = {
        **RULES,
        "booking_horizon_days": 0,
        "weekly_hours": [
            {"weekday": 3, "start_time": "09:00", "end_time": "12:00"},
            {"weekday": 3, "start_time": "10:00", "end_time": "11:00"},
        ],
    }
    refused = mentor_api.put(API, bad, content_type="application/json")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert set(error["fields"]) == {"booking_horizon_days", "weekly_hours"}
    assert "Thursday: 09:00–12:00 overlaps 10:00–11:00." in error["fields"]["weekly_hours"]
    mentor.refresh_from_db()
    assert mentor.booking_horizon_days == 30  # all or nothing
    assert list(WeeklyAvailability.objects.filter(mentor=mentor).values_list("weekday", flat=True)) == [1]

    malformed = mentor_api.put(API, {"weekly_hours": [{"weekday": 9}]}, content_type="application/json")
    assert malformed.status_code == 400 and "weekly_hours" in malformed.json()["error"]["fields"]


def test_overrides_through_the_api(mentor_api, mentor):
    day = tomorrow().isoformat()
    created = mentor_api.post(
        f"{API}overrides/", {"date": day, "kind": "extra", "start_time": "18:00", "end_time": "19:00"}
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body == {
        "id": body["id"],
        "date": day,
        "kind": "extra",
        "start_time": "18:00",
        "end_time": "19:00",
    }
    assert mentor_api.get(API).json()["overrides"] == [body]
    refused = mentor_api.post(f"{API}overrides/", {"date": day, "kind": "off", "start_time": "10:00"})
    assert refused.status_code == 400 and "start_time" in refused.json()["error"]["fields"]
    assert mentor_api.delete(f"{API}overrides/{body['id']}/").status_code == 204
    missing = mentor_api.delete(f"{API}overrides/{body['id']}/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_learners_get_403_and_anonymous_401(institution_a, mentor):
    make_learner(institution_a, email="lee@a.example")
    client = HostClient(host_of(institution_a))
    sign_in(client, "lee@a.example")
    for response in (
        client.get(API),
        client.put(API, {}, content_type="application/json"),
        client.post(f"{API}overrides/", {}),
        client.delete(f"{API}overrides/1/"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    anonymous = HostClient(host_of(institution_a)).get(API)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_authenticated"


def test_b_sees_its_own_mentor_only(institution_a, institution_b, mentor):
    make_mentor(institution_b, email="mo@b.example", timezone_name="Asia/Tokyo", hours=[])
    client_b = HostClient(host_of(institution_b))
    sign_in(client_b, "mo@b.example")
    body = client_b.get(API).json()
    assert body["timezone"] == "Asia/Tokyo" and body["weekly_hours"] == []
