"""Booking lifecycle: every allowed transition, every refused one, holds, reschedules, isolation."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError
from shared.core.testing import HostClient, host_of, sign_in
from tenant_apps.billing.models import pricing_policy

from .. import bookings as services
from .. import lifecycle
from ..models import Booking, BookingTransition
from .factories import make_booking, make_learner, make_mentor, next_weekday_at


@pytest.fixture
def scene(institution_a):
    """A free mentor, a learner and a slot next Wednesday at 10:00 UTC; runs in A's schema."""
    mentor = make_mentor(institution_a, email="mo@a.example")
    learner = make_learner(institution_a, email="lee@a.example")
    with tenant_context(institution_a):
        yield mentor, learner, next_weekday_at(10)


def statuses(booking: Booking) -> list[tuple[str, str]]:
    return list(BookingTransition.objects.filter(booking=booking).values_list("from_status", "to_status"))


def test_a_free_booking_is_confirmed_and_recorded(scene):
    mentor, learner, start = scene
    booking = services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    assert booking.status == Booking.Status.CONFIRMED
    assert booking.ends_at - booking.starts_at == timedelta(minutes=30)
    assert booking.currency == "GBP"
    transition = BookingTransition.objects.get(booking=booking)
    assert (transition.from_status, transition.to_status, transition.actor) == ("", "confirmed", learner)


def test_with_approval_a_booking_is_requested_then_approved_or_declined(scene):
    mentor, learner, start = scene
    mentor.requires_approval = True
    mentor.save()
    booking = services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    assert booking.status == Booking.Status.REQUESTED
    with pytest.raises(ApplicationError, match="Only the mentor"):
        services.booking_approve(booking=booking, actor=learner)
    services.booking_approve(booking=booking, actor=mentor.user)
    assert statuses(booking) == [("", "requested"), ("requested", "confirmed")]

    other = services.booking_request(
        learner=learner, mentor=mentor, starts_at=start + timedelta(hours=2), minutes=30
    )
    services.booking_decline(booking=other, actor=mentor.user, reason="Travelling")
    other.refresh_from_db()
    assert other.status == Booking.Status.DECLINED
    assert BookingTransition.objects.filter(booking=other).last().note == "Travelling"


def test_a_paid_booking_is_held_until_paid(scene):
    mentor, learner, start = scene
    mentor.price_minor = 2500
    mentor.save()
    policy = pricing_policy()
    booking = services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    assert booking.status == Booking.Status.HELD
    assert booking.price_minor == 2500
    expected = timezone.now() + timedelta(minutes=policy.payment_hold_minutes)
    assert abs((booking.hold_expires_at - expected).total_seconds()) < 5
    services.booking_confirm_payment(booking=booking)
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert booking.hold_expires_at is None


def test_an_expired_hold_frees_the_slot_by_itself(scene):
    mentor, learner, start = scene
    mentor.price_minor = 2500
    mentor.save()
    held = services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    Booking.objects.filter(pk=held.pk).update(hold_expires_at=timezone.now() - timedelta(seconds=1))
    # The same slot is offered again and can be booked: the stale hold is expired on the way.
    second_learner = type(learner).objects.create(email="second@a.example", full_name="Second")
    again = services.booking_request(learner=second_learner, mentor=mentor, starts_at=start, minutes=30)
    assert again.status == Booking.Status.HELD
    held.refresh_from_db()
    assert held.status == Booking.Status.EXPIRED
    assert statuses(held)[-1] == ("held", "expired")


def test_the_hold_expiry_task_expires_only_unpaid_holds(scene):
    from ..tasks import hold_expire

    mentor, learner, start = scene
    mentor.price_minor = 1000
    mentor.save()
    unpaid = services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    paid = services.booking_request(
        learner=learner, mentor=mentor, starts_at=start + timedelta(hours=2), minutes=30
    )
    services.booking_confirm_payment(booking=paid)
    Booking.objects.update(hold_expires_at=timezone.now() - timedelta(seconds=1))
    hold_expire.run(unpaid.pk)
    hold_expire.run(paid.pk)
    unpaid.refresh_from_db()
    paid.refresh_from_db()
    assert unpaid.status == Booking.Status.EXPIRED
    assert paid.status == Booking.Status.CONFIRMED


def test_cancel_needs_a_reason_and_reports_the_policy(scene):
    mentor, learner, start = scene
    booking = services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    with pytest.raises(ApplicationError, match="say why"):
        services.booking_cancel(booking=booking, actor=learner, reason="  ")
    terms = lifecycle.cancellation_terms(booking=booking)
    assert terms.refund_percent == 100 and not terms.is_late
    late = lifecycle.cancellation_terms(booking=booking, at=booking.starts_at - timedelta(hours=1))
    assert late.is_late and late.refund_percent == pricing_policy().late_refund_percent
    services.booking_cancel(booking=booking, actor=mentor.user, reason="Ill")
    booking.refresh_from_db()
    assert (booking.status, booking.cancel_reason) == ("cancelled", "Ill")


def test_refused_transitions_have_clear_errors(scene):
    mentor, learner, start = scene
    booking = services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    with pytest.raises(ApplicationError, match="confirmed session cannot be approved"):
        services.booking_approve(booking=booking, actor=mentor.user)
    with pytest.raises(ApplicationError, match="cannot be paid for"):
        services.booking_confirm_payment(booking=booking)
    with pytest.raises(ApplicationError, match="once it has started"):
        services.booking_complete(booking=booking, actor=mentor.user)
    services.booking_cancel(booking=booking, actor=learner, reason="Changed plans")
    for attempt in (
        lambda: services.booking_cancel(booking=booking, actor=learner, reason="again"),
        lambda: services.booking_reschedule(
            booking=booking, actor=learner, starts_at=start + timedelta(hours=3)
        ),
        lambda: lifecycle.transition(booking=booking, event="complete", actor=mentor.user),
        lambda: lifecycle.transition(booking=booking, event="no_show", actor=mentor.user),
        lambda: lifecycle.transition(booking=booking, event="expire", actor=None),
    ):
        with pytest.raises(ApplicationError) as error:
            attempt()
        assert error.value.status == 409
        assert "cancelled session cannot be" in error.value.message
    with pytest.raises(ApplicationError, match="Unknown action"):
        lifecycle.transition(booking=booking, event="teleport", actor=None)


def test_complete_and_no_show_after_the_start(scene):
    mentor, learner, _ = scene
    past = make_booking(mentor, learner, timezone.now() - timedelta(hours=2))
    services.booking_complete(booking=past, actor=mentor.user)
    past.refresh_from_db()
    assert past.status == "completed"
    missed = make_booking(mentor, learner, timezone.now() - timedelta(hours=5))
    with pytest.raises(ApplicationError, match="Only the mentor"):
        services.booking_no_show(booking=missed, actor=learner)
    services.booking_no_show(booking=missed, actor=mentor.user)
    missed.refresh_from_db()
    assert missed.status == "no_show"


def test_reschedule_takes_the_new_slot_and_releases_the_old_one(scene):
    mentor, learner, start = scene
    booking = services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    new = services.booking_reschedule(booking=booking, actor=learner, starts_at=start + timedelta(minutes=30))
    booking.refresh_from_db()
    assert booking.status == Booking.Status.RESCHEDULED
    assert new.status == Booking.Status.CONFIRMED
    assert new.rescheduled_from == booking
    assert Booking.objects.filter(learner=learner, status__in=Booking.LIVE_STATUSES).count() == 1
    # The old time is free again.
    someone = type(learner).objects.create(email="s@a.example", full_name="Someone")
    services.booking_request(learner=someone, mentor=mentor, starts_at=start, minutes=30)


def test_a_failed_reschedule_keeps_the_original_booking(scene):
    mentor, learner, start = scene
    booking = services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    someone = type(learner).objects.create(email="s@a.example", full_name="Someone")
    taken = start + timedelta(hours=2)
    services.booking_request(learner=someone, mentor=mentor, starts_at=taken, minutes=30)
    with pytest.raises(ApplicationError) as error:
        services.booking_reschedule(booking=booking, actor=learner, starts_at=taken)
    assert error.value.status == 409
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert Booking.objects.filter(learner=learner, status__in=Booking.LIVE_STATUSES).count() == 1
    assert statuses(booking) == [("", "confirmed")]


def test_only_participants_act_on_a_booking(scene):
    mentor, learner, start = scene
    booking = services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)
    stranger = type(learner).objects.create(email="x@a.example", full_name="Stranger")
    with pytest.raises(ApplicationError) as error:
        services.booking_cancel(booking=booking, actor=stranger, reason="no")
    assert error.value.status == 403
    with pytest.raises(ApplicationError):
        services.booking_get(user=stranger, booking_id=booking.pk)


def test_cannot_book_yourself_or_an_unapproved_mentor(scene):
    mentor, learner, start = scene
    with pytest.raises(ApplicationError, match="yourself"):
        services.booking_request(learner=mentor.user, mentor=mentor, starts_at=start, minutes=30)
    mentor.user.mentor_status = "pending"
    mentor.user.save()
    with pytest.raises(ApplicationError, match="not taking bookings"):
        services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=30)


def test_postgres_refuses_overlapping_live_bookings(scene):
    """The exclusion constraint is the last word, whatever the Python code does."""
    mentor, learner, start = scene
    make_booking(mentor, learner, start, minutes=60)
    with pytest.raises(IntegrityError, match="booking_no_double_booking"), transaction.atomic():
        make_booking(mentor, learner, start + timedelta(minutes=30), minutes=30)
    # Not live: no conflict.
    make_booking(mentor, learner, start + timedelta(minutes=30), status=Booking.Status.CANCELLED)
    # Buffers count: touching ranges are fine, overlapping buffers are not.
    make_booking(mentor, learner, start + timedelta(minutes=60), minutes=30)


# --- Through HTTP ----------------------------------------------------------------------------


def test_booking_through_the_api_and_409_when_taken(institution_a):
    mentor = make_mentor(institution_a, email="mo@a.example")
    make_learner(institution_a, email="lee@a.example")
    make_learner(institution_a, email="kim@a.example")
    start = next_weekday_at(11)
    lee = HostClient(host_of(institution_a))
    sign_in(lee, "lee@a.example")
    body = {"mentor_id": mentor.pk, "starts_at": start.isoformat(), "minutes": 30, "topic": "SQL"}
    created = lee.post("/api/v1/bookings/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    booking_id = created.json()["id"]
    assert created.json()["status"] == "confirmed"

    kim = HostClient(host_of(institution_a))
    sign_in(kim, "kim@a.example")
    clash = kim.post("/api/v1/bookings/", body, content_type="application/json")
    assert clash.status_code == 409
    assert clash.json()["error"]["message"]
    # Kim cannot read Lee's booking.
    assert kim.get(f"/api/v1/bookings/{booking_id}/").status_code == 404
    assert kim.get(f"/sessions/{booking_id}/").status_code == 404
    assert kim.post(f"/api/v1/bookings/{booking_id}/cancel/", {"reason": "x"}).status_code == 404

    detail = lee.get(f"/api/v1/bookings/{booking_id}/").json()
    assert detail["actions"] == ["cancel", "reschedule", "complete", "no_show"]
    assert [t["to_status"] for t in detail["transitions"]] == ["confirmed"]
    cancelled = lee.post(
        f"/api/v1/bookings/{booking_id}/cancel/", {"reason": "Clash"}, content_type="application/json"
    )
    assert cancelled.json()["status"] == "cancelled"
    again = lee.post(
        f"/api/v1/bookings/{booking_id}/cancel/", {"reason": "x"}, content_type="application/json"
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_transition"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"mentor_id": "abc", "starts_at": "2027-01-01T10:00:00Z", "minutes": 30},
        {"mentor_id": 1, "starts_at": "not a date", "minutes": 30},
        {"mentor_id": 1, "starts_at": "2027-01-01T10:00:00Z", "minutes": 7},
        {"mentor_id": 999999, "starts_at": "2027-01-01T10:00:00Z", "minutes": 30},
    ],
)
def test_bad_booking_requests_get_clear_4xx(institution_a, body):
    make_learner(institution_a, email="lee@a.example")
    client = HostClient(host_of(institution_a))
    sign_in(client, "lee@a.example")
    response = client.post("/api/v1/bookings/", body, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.json()["error"]["message"]


def test_a_learner_of_b_cannot_see_or_book_anything_of_a(institution_a, institution_b):
    mentor_a = make_mentor(institution_a, email="mo@a.example")
    lee_a = make_learner(institution_a, email="lee@a.example")
    with tenant_context(institution_a):
        booking_a = make_booking(mentor_a, lee_a, next_weekday_at(10))
    make_learner(institution_b, email="lee@b.example")
    client = HostClient(host_of(institution_b))
    sign_in(client, "lee@b.example")
    assert client.get(f"/api/v1/bookings/{booking_a.pk}/").status_code == 404
    assert client.get(f"/sessions/{booking_a.pk}/").status_code == 404
    body = {"mentor_id": mentor_a.pk, "starts_at": next_weekday_at(12).isoformat(), "minutes": 30}
    assert client.post("/api/v1/bookings/", body, content_type="application/json").status_code == 404
    assert client.get("/api/v1/bookings/").json() == []


def test_book_page_flow(institution_a):
    mentor = make_mentor(institution_a, email="mo@a.example")
    make_learner(institution_a, email="lee@a.example")
    client = HostClient(host_of(institution_a))
    sign_in(client, "lee@a.example")
    start = next_weekday_at(14)
    response = client.post(f"/mentors/{mentor.pk}/book/", {"starts_at": start.isoformat(), "minutes": "30"})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Confirmed" in page
    sessions = client.get("/sessions/").content.decode()
    assert "Mo Mentor" in sessions
    bad = client.post(f"/mentors/{mentor.pk}/book/", {"starts_at": "garbage", "minutes": "x"}, follow=True)
    assert "Please pick a time" in bad.content.decode()
