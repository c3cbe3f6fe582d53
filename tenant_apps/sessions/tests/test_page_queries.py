"""The learner's main pages run a bounded number of queries, whatever the number of rows they show.

Each page is rendered for a learner with few rows (3 mentors, bookings, reviews, notifications…) in
institution A and with many (30) in institution B, under the same `django_assert_max_num_queries`
bound; both counts must be equal, and each page must show its rows (bounded lists paginate). What
bench/pages.py times is what these tests bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, host_of, sign_in
from tenant_apps.accounts.models import User
from tenant_apps.billing.models import Gateways, Payment, Refund
from tenant_apps.notifications.models import Event, Notification
from tenants.models import Institution

from ..directory import FACETS_CACHE_KEY
from ..models import (
    Booking,
    BookingTransition,
    Enrollment,
    GroupSession,
    Material,
    MentorProfile,
    Review,
)
from ..views.bookings import PAST_PER_PAGE
from ..views.groups import GROUPS_PER_PAGE
from .factories import make_booking, make_learner, make_mentor

FEW, MANY = 3, 30
MENTORS_PER_PAGE = 20  # views.directory
NOTIFICATIONS_PER_PAGE = 30  # notifications.views.PAGE_SIZE
RECENT_REVIEWS = 5  # directory.RECENT_REVIEWS


@dataclass
class Scene:
    institution: Institution
    size: int
    learner: User
    client: HostClient
    mentors: list[MentorProfile]
    past: list[Booking]  # the learner's completed sessions, newest first, each with mentors[0]
    upcoming: list[Booking]  # confirmed, soonest first
    live: Booking  # under way now: its room is open
    groups: list[GroupSession]  # upcoming, the learner has a seat in each
    live_group: GroupSession  # under way now, with `size` other learners
    payment: Payment  # for past[0], with `size` refunds

    def paths(self) -> dict[str, str]:
        return {
            "home": "/",
            "directory": "/mentors/",
            "directory_search": "/mentors/?q=python",
            "mentor": f"/mentors/{self.mentors[0].pk}/",
            "my_sessions": "/sessions/",
            "my_sessions_page_2": "/sessions/?page=2",
            "booking_past": f"/sessions/{self.past[0].pk}/",
            "booking_upcoming": f"/sessions/{self.upcoming[0].pk}/",
            "groups": "/groups/",
            "group": f"/groups/{self.live_group.pk}/",
            "live": f"/sessions/{self.live.pk}/live/",
            "group_live": f"/groups/{self.live_group.pk}/live/",
            "receipt": f"/billing/receipts/{self.payment.reference}/",
            "notifications": "/notifications/",
            "account": "/accounts/profile/",
        }


def build(institution: Institution, size: int) -> Scene:
    """`size` of everything a learner's pages list, in one institution."""
    now = timezone.now().replace(second=0, microsecond=0)
    learner = make_learner(institution, email=f"lee{size}@learners.example", full_name="Lee Learner")
    others = [make_learner(institution, email=f"o{i}-{size}@learners.example") for i in range(size)]
    mentors = [
        make_mentor(
            institution,
            email=f"m{i}-{size}@mentors.example",
            full_name=f"Mentor Number{i}",
            headline="Python mentor",
            expertise=["python", "career-change"],
            languages=["English"],
            price_minor=2500,
        )
        for i in range(size)
    ]
    with tenant_context(institution):
        past = [
            make_booking(mentors[0], learner, now - timedelta(days=i + 1), status=Booking.Status.COMPLETED)
            for i in range(size)
        ]
        upcoming = [
            make_booking(mentor, learner, now + timedelta(days=i + 1), status=Booking.Status.CONFIRMED)
            for i, mentor in enumerate(mentors)
        ]
        live = make_booking(
            mentors[0], learner, now - timedelta(minutes=5), minutes=60, status=Booking.Status.CONFIRMED
        )
        Review.objects.bulk_create(
            Review(booking=booking, rating=5, comment=f"Helpful session {i}", mentor_reply="Thanks!")
            for i, booking in enumerate(past)
        )
        first = past[0]
        BookingTransition.objects.bulk_create(
            BookingTransition(
                booking=first,
                from_status="confirmed",
                to_status="confirmed",
                actor=learner if i % 2 else mentors[0].user,
                note=f"Step {i}",
            )
            for i in range(size)
        )
        Material.objects.bulk_create(
            Material(
                booking=first,
                uploaded_by=learner if i % 2 else mentors[0].user,
                file=f"materials/{first.pk}/file{i}",
                original_name=f"notes-{i}.pdf",
                content_type="application/pdf",
                size=1000 + i,
            )
            for i in range(size)
        )
        payment = Payment.objects.create(
            reference=f"pay-{institution.slug}-{first.pk}",
            booking=first,
            learner=learner,
            gateway=Gateways.SANDBOX,
            amount_minor=3000,
            currency="GBP",
            refunded_minor=10 * size,
            status=Payment.Status.PARTIALLY_REFUNDED,
            paid_at=first.starts_at,
        )
        Refund.objects.bulk_create(
            Refund(
                reference=f"ref-{institution.slug}-{i}",
                payment=payment,
                amount_minor=10,
                currency="GBP",
                kind=Refund.Kind.MANUAL,
                reason=f"Partial refund {i}",
                status=Refund.Status.SUCCEEDED,
            )
            for i in range(size)
        )
        groups = GroupSession.objects.bulk_create(
            GroupSession(
                mentor=mentor,
                title=f"Workshop number {i}",
                starts_at=now + timedelta(days=i + 1, hours=3),
                ends_at=now + timedelta(days=i + 1, hours=4),
                capacity=size + 5,
                currency="GBP",
            )
            for i, mentor in enumerate(mentors)
        )
        live_group = GroupSession.objects.create(
            mentor=mentors[-1],
            title="Live workshop",
            starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(minutes=55),
            capacity=size + 5,
            currency="GBP",
        )
        Enrollment.objects.bulk_create(
            [
                *(Enrollment(group_session=g, learner=learner, status="enrolled") for g in groups),
                Enrollment(group_session=live_group, learner=learner, status="enrolled"),
                *(Enrollment(group_session=live_group, learner=o, status="enrolled") for o in others),
            ]
        )
        Notification.objects.bulk_create(
            Notification(
                recipient=learner,
                event=Event.BOOKING_CONFIRMED,
                title=f"Notice number {i}",
                body="Your session is confirmed.",
                url=f"/sessions/{upcoming[i].pk}/",
                read_at=None if i % 2 else now,
            )
            for i in range(size)
        )
        cache.delete(FACETS_CACHE_KEY)
    client = HostClient(host_of(institution))
    sign_in(client, learner.email)
    return Scene(
        institution=institution,
        size=size,
        learner=learner,
        client=client,
        mentors=mentors,
        past=past,
        upcoming=upcoming,
        live=live,
        groups=groups,
        live_group=live_group,
        payment=payment,
    )


def count(html: str, testid_prefix: str) -> int:
    return len(re.findall(rf'data-testid="{testid_prefix}\d+"', html))


# What each page must show, given its scene: (page, scene, html) → None, asserting.
def shows_directory(scene: Scene, html: str) -> None:
    assert count(html, "mentor-") == min(scene.size, MENTORS_PER_PAGE)
    assert f"{scene.size} mentors" in html
    if scene.size > MENTORS_PER_PAGE:
        assert "Page 1 of 2" in html


def shows_mentor(scene: Scene, html: str) -> None:
    assert "Mentor Number0" in html
    assert len(re.findall(r"Helpful session \d+", html)) == min(scene.size, RECENT_REVIEWS)


def shows_my_sessions(scene: Scene, html: str) -> None:
    for booking in scene.upcoming:  # every upcoming session is listed
        assert f'data-testid="booking-{booking.pk}"' in html
    shown_past = scene.past[:PAST_PER_PAGE]
    for booking in shown_past:
        assert f'data-testid="booking-{booking.pk}"' in html
    assert count(html, "booking-") == len(scene.upcoming) + 1 + len(shown_past)  # + the live one
    assert html.count("Workshop number") == scene.size  # the seats in group sessions
    assert ("Page 1 of 2" in html and 'rel="next"' in html) == (scene.size > PAST_PER_PAGE)


def shows_my_sessions_page_2(scene: Scene, html: str) -> None:
    rest = scene.past[PAST_PER_PAGE:]
    if not rest:  # one page only: ?page=2 shows the last (the only) page
        assert count(html, "booking-") == len(scene.upcoming) + 1 + len(scene.past)
        return
    for booking in rest:
        assert f'data-testid="booking-{booking.pk}"' in html
    assert f'data-testid="booking-{scene.past[0].pk}"' not in html
    assert "Page 2 of 2" in html and 'rel="prev"' in html


def shows_booking_past(scene: Scene, html: str) -> None:
    assert html.count("Step ") == scene.size  # the history
    assert count(html, "material-") == scene.size
    assert 'data-testid="review"' in html and "Helpful session 0" in html
    assert scene.payment.reference in html  # the receipt link


def shows_booking_upcoming(scene: Scene, html: str) -> None:
    assert "Reschedule" in html and "Cancel session" in html


def shows_groups(scene: Scene, html: str) -> None:
    assert count(html, "group-") == min(scene.size, GROUPS_PER_PAGE)
    assert ("Page 1 of 2" in html) == (scene.size > GROUPS_PER_PAGE)


def shows_group(scene: Scene, html: str) -> None:
    assert "Live workshop" in html and f"4 of {scene.size + 5} seats left" in html


def shows_live(scene: Scene, html: str) -> None:
    assert "websocket_path" in html


def shows_receipt(scene: Scene, html: str) -> None:
    assert scene.payment.reference in html
    assert len(re.findall(r"Partial refund \d+", html)) == scene.size


def shows_notifications(scene: Scene, html: str) -> None:
    assert count(html, "notification-") == min(scene.size, NOTIFICATIONS_PER_PAGE)


def shows_nothing_special(scene: Scene, html: str) -> None:
    assert "Lee Learner" in html


# page → (the bound on its queries, what it must show)
PAGES = {
    "home": (3, shows_nothing_special),
    "directory": (5, shows_directory),
    "directory_search": (5, shows_directory),
    "mentor": (5, shows_mentor),
    "my_sessions": (9, shows_my_sessions),
    "my_sessions_page_2": (9, shows_my_sessions_page_2),
    "booking_past": (8, shows_booking_past),
    "booking_upcoming": (13, shows_booking_upcoming),
    "groups": (5, shows_groups),
    "group": (5, shows_group),
    "live": (5, shows_live),
    "group_live": (7, shows_live),
    "receipt": (5, shows_receipt),
    "notifications": (6, shows_notifications),
    "account": (4, shows_nothing_special),
}


@pytest.fixture
def scenes(institution_a, institution_b) -> tuple[Scene, Scene]:
    few, many = build(institution_a, FEW), build(institution_b, MANY)
    yield few, many
    for institution in (institution_a, institution_b):
        with tenant_context(institution):
            cache.delete(FACETS_CACHE_KEY)


def queries_of(scene: Scene, path: str, bound: int, assert_max_queries) -> tuple[int, str]:
    scene.client.get(path)  # once first: a page's first request may fill a cache (facets)
    with assert_max_queries(bound) as captured:
        response = scene.client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(captured), response.content.decode()


def test_each_page_runs_the_same_bounded_queries_for_3_or_30_rows(scenes, django_assert_max_num_queries):
    counts: dict[str, list[int]] = {}
    for page, (bound, shows) in PAGES.items():
        for scene in scenes:
            path = scene.paths()[page]
            try:
                queries, html = queries_of(scene, path, bound, django_assert_max_num_queries)
                shows(scene, html)
            except AssertionError as error:
                raise AssertionError(f"{page} ({path}) with {scene.size} rows: {error}") from error
            counts.setdefault(page, []).append(queries)
    unequal = {page: found for page, found in counts.items() if found[0] != found[1]}
    assert not unequal, f"queries with {FEW} rows and with {MANY} differ: {unequal}"


def test_a_learner_signed_in_on_a_gets_no_sessions_page_on_b(scenes, institution_b):
    few, _ = scenes
    # A's session cookie sent to B's host: B does not know it, so B asks to sign in.
    response = few.client.get("/sessions/", HTTP_HOST=host_of(institution_b))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_an_out_of_range_page_shows_the_last_page(scenes):
    _, many = scenes
    response = many.client.get("/sessions/?page=99")
    assert response.status_code == 200
    assert "Page 2 of 2" in response.content.decode()
    response = many.client.get("/sessions/?page=abc")
    assert response.status_code == 200
    assert "Page 1 of 2" in response.content.decode()
