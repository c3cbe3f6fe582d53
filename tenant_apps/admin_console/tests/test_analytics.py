"""The analytics dashboard: every figure against a small dataset computed by hand, the period
filter, the CSV exports, who may see it, and that one institution's data never shows in another's.

Institution A is in Europe/London, which is on summer time (UTC+1) over the period used here, so
several bookings and payments are placed just either side of a local midnight to check that weeks
and months are the institution's, not UTC's.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, host_of, sign_in
from tenant_apps.billing.models import Earning, Gateways, Payment, Refund
from tenant_apps.sessions.models import AvailabilityOverride, Booking, Review
from tenant_apps.sessions.tests.factories import make_booking, make_learner, make_mentor
from tenants.models import Institution

from ..analytics import Period, available_minutes, dashboard

S = Booking.Status
LONDON = ZoneInfo("Europe/London")
FROM, TO = "2025-05-26", "2025-06-22"  # four weeks (Mondays 26 May, 2, 9 and 16 June), two months
PERIOD = {"from": FROM, "to": TO}
_refs = itertools.count(1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def pay(
    booking: Booking, amount: int, paid_at: str | None, status: str = Payment.Status.SUCCEEDED
) -> Payment:
    return Payment.objects.create(
        reference=f"pay_{next(_refs)}",
        booking=booking,
        learner=booking.learner,
        gateway=Gateways.SANDBOX,
        amount_minor=amount,
        currency="GBP",
        status=status,
        paid_at=utc(paid_at) if paid_at else None,
    )


def refund(payment: Payment, amount: int, completed_at: str) -> Refund:
    Payment.objects.filter(pk=payment.pk).update(
        refunded_minor=amount,
        status=Payment.Status.REFUNDED
        if amount == payment.amount_minor
        else Payment.Status.PARTIALLY_REFUNDED,
    )
    return Refund.objects.create(
        reference=f"ref_{next(_refs)}",
        payment=payment,
        amount_minor=amount,
        currency="GBP",
        kind=Refund.Kind.CANCELLATION,
        status=Refund.Status.SUCCEEDED,
        completed_at=utc(completed_at),
    )


def earn(booking: Booking, gross: int, commission: int, released_at: str) -> Earning:
    return Earning.objects.create(
        booking=booking,
        mentor=booking.mentor,
        gross_minor=gross,
        commission_minor=commission,
        amount_minor=gross - commission,
        currency="GBP",
        released_at=utc(released_at),
    )


def review(booking: Booking, rating: int) -> Review:
    return Review.objects.create(booking=booking, rating=rating)


def seed_a(institution: Institution) -> dict:
    """The known dataset of institution A (times in UTC; London is an hour ahead)."""
    ann = make_mentor(institution, full_name="Ann Mentor")  # Mon–Fri 09:00–17:00
    ben = make_mentor(
        institution,
        full_name="Ben Mentor",
        # Mondays 09:00–12:00 and 11:00–13:00: overlapping, so 4 hours a Monday.
        hours=[(0, time(9), time(12)), (0, time(11), time(13))],
    )
    cid = make_mentor(institution, full_name="Cid Mentor", hours=[])
    l1 = make_learner(institution, full_name="Lia One")
    l2 = make_learner(institution, full_name="Lou Two")
    l3 = make_learner(institution, full_name="Lee Three")
    with tenant_context(institution):
        # Ann's day off on Wednesday 4 June; Ben's on Monday 2 June, and extra hours on Saturday
        # 14 June; an override outside the period counts for nothing.
        AvailabilityOverride.objects.create(mentor=ann, date=date(2025, 6, 4), kind="off")
        AvailabilityOverride.objects.create(mentor=ben, date=date(2025, 6, 2), kind="off")
        AvailabilityOverride.objects.create(
            mentor=ben, date=date(2025, 6, 14), kind="extra", start_time=time(10), end_time=time(12)
        )
        AvailabilityOverride.objects.create(
            mentor=ben, date=date(2025, 6, 30), kind="extra", start_time=time(10), end_time=time(12)
        )

        # Week of Monday 26 May.
        b1 = make_booking(ann, l1, utc("2025-05-27 10:00"), minutes=60, status=S.COMPLETED)
        b2 = make_booking(ann, l2, utc("2025-05-28 10:00"), minutes=30, status=S.CANCELLED)
        # Sunday 1 June 23:30 in London: still the week of 26 May.
        make_booking(ben, l1, utc("2025-06-01 22:30"), minutes=60, status=S.NO_SHOW)
        # Week of Monday 2 June.
        b4 = make_booking(ann, l3, utc("2025-06-03 09:00"), minutes=60, status=S.COMPLETED)
        make_booking(ann, l1, utc("2025-06-04 09:00"), minutes=30, status=S.DECLINED)
        # Monday 9 June 00:30 in London: the week of 9 June, though Sunday in UTC.
        make_booking(ben, l1, utc("2025-06-08 23:30"), minutes=60, status=S.CONFIRMED)
        # Week of Monday 9 June.
        b7 = make_booking(ann, l2, utc("2025-06-10 09:00"), minutes=90, status=S.COMPLETED)
        make_booking(ben, l3, utc("2025-06-11 09:00"), minutes=60, status=S.CANCELLED)
        make_booking(ann, l2, utc("2025-06-12 09:00"), minutes=60, status=S.EXPIRED)
        # Week of Monday 16 June.
        b9 = make_booking(ben, l1, utc("2025-06-16 09:00"), minutes=60, status=S.COMPLETED)
        b10 = make_booking(ann, l3, utc("2025-06-18 09:00"), minutes=30, status=S.CONFIRMED)
        make_booking(cid, l2, utc("2025-06-17 09:00"), minutes=60, status=S.COMPLETED)
        # Outside: Monday 23 June 00:30 and Sunday 25 May 23:30 in London.
        b11 = make_booking(ann, l1, utc("2025-06-22 23:30"), minutes=60, status=S.COMPLETED)
        b12 = make_booking(ann, l2, utc("2025-05-25 22:30"), minutes=60, status=S.COMPLETED)

        for booking, rating in ((b1, 5), (b4, 4), (b7, 3), (b9, 2), (b11, 1), (b12, 1)):
            review(booking, rating)

        pay(b1, 2500, "2025-05-27 09:00")
        earn(b1, 2500, 250, "2025-05-27 11:30")
        # Paid before the period, refunded in full inside it (May).
        refund(pay(b2, 2500, "2025-05-20 09:00"), 2500, "2025-05-29 12:00")
        # 31 May 23:30 UTC is 1 June in London: June's revenue.
        pay(b4, 3000, "2025-05-31 23:30")
        earn(b4, 3000, 300, "2025-06-03 10:30")
        refund(pay(b7, 2000, "2025-06-10 08:00"), 500, "2025-06-12 12:00")
        earn(b7, 1500, 150, "2025-06-10 11:00")
        pay(b10, 3000, None, status=Payment.Status.FAILED)
        pay(b10, 3000, None, status=Payment.Status.PENDING)
        # 22 June 23:30 UTC is 23 June in London: outside.
        pay(b11, 9999, "2025-06-22 23:30")
        earn(b11, 9999, 999, "2025-06-22 23:45")
    return {"ann": ann, "ben": ben, "cid": cid}


def seed_b(institution: Institution) -> None:
    """Institution B, busy in the same weeks: none of it may show in A's figures."""
    zed = make_mentor(institution, full_name="Zed Other")
    learner = make_learner(institution, full_name="Zoe Other")
    with tenant_context(institution):
        for day in range(2, 7):
            booking = make_booking(zed, learner, utc(f"2025-06-0{day} 12:00"), minutes=60, status=S.COMPLETED)
            review(booking, 1)
            pay(booking, 7777, f"2025-06-0{day} 11:00")
            earn(booking, 7777, 777, f"2025-06-0{day} 13:00")


EXPECTED_SESSIONS = {
    "labels": ["2025-05-26", "2025-06-02", "2025-06-09", "2025-06-16"],
    "booked": [0, 0, 1, 1],
    "completed": [1, 1, 1, 2],
    "cancelled": [1, 0, 1, 0],
    "no_show": [1, 0, 0, 0],
}
EXPECTED_LEARNERS = {"labels": EXPECTED_SESSIONS["labels"], "learners": [1, 1, 2, 3]}
EXPECTED_REVENUE = {
    "labels": ["2025-05", "2025-06"],
    "paid_minor": [2500, 5000],
    "refunded_minor": [2500, 500],
    "net_minor": [0, 4500],
    "commission_minor": [250, 450],
}
# Ann: Mon–Fri 8 h × 4 weeks = 160 h, less her day off = 152 h (9120 min); booked 60+60+90+30 min.
# Ben: 4 h × 4 Mondays, less a Monday off, plus 2 extra hours = 14 h (840 min); booked 3 × 60 min.
# Cid: no hours, one 60-minute session.
EXPECTED_UTILISATION = {
    "labels": ["Ben Mentor", "Ann Mentor", "Cid Mentor"],
    "booked_minutes": [180, 240, 60],
    "available_minutes": [840, 9120, 0],
    "percent": ["21.4", "2.6", ""],
}
EXPECTED_TOP = {
    "labels": ["Ann Mentor", "Ben Mentor", "Cid Mentor"],
    "completed": [3, 1, 1],
    "rating": ["4.00", "2.00", ""],
    "reviews": [3, 1, 0],
}
EXPECTED_RATING = {"average": "3.50", "count": 4}


def admin_client(institution: Institution) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, f"admin@{institution.slug}.example")
    return client


def page_chart(response) -> dict:
    match = re.search(
        r'<script id="analytics-chart-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.DOTALL,
    )
    assert match, "the page has no chart data"
    return json.loads(match.group(1))


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


@pytest.fixture
def scene(institution_a, institution_b) -> dict:
    mentors = seed_a(institution_a)
    seed_b(institution_b)
    return mentors


class TestFigures:
    def test_every_figure_equals_the_hand_computed_value(self, institution_a, scene):
        response = admin_client(institution_a).get(reverse("manage:analytics"), PERIOD)
        assert response.status_code == 200
        chart = page_chart(response)
        assert chart["currency"] == "GBP" and chart["exponent"] == 2
        assert chart["sessions"] == EXPECTED_SESSIONS
        assert chart["learners"] == EXPECTED_LEARNERS
        assert chart["revenue"] == EXPECTED_REVENUE
        assert chart["utilisation"] == EXPECTED_UTILISATION
        assert chart["top_mentors"] == EXPECTED_TOP
        assert chart["rating"] == EXPECTED_RATING
        html = response.content.decode()
        assert 'data-testid="total-net">GBP 45.00<' in html
        assert 'data-testid="total-commission">GBP 7.00<' in html
        assert 'data-testid="total-completed">5<' in html

    def test_available_hours(self, institution_a, scene):
        with tenant_context(institution_a):
            minutes = available_minutes(Period(date(2025, 5, 26), date(2025, 6, 22), LONDON))
        assert minutes == {scene["ann"].pk: 9120, scene["ben"].pk: 840}
        with tenant_context(institution_a):
            # Three days, Friday to Sunday: Ann's Friday; Ben's Saturday extra hours fall outside.
            minutes = available_minutes(Period(date(2025, 5, 30), date(2025, 6, 1), LONDON))
        assert minutes == {scene["ann"].pk: 480}

    def test_a_constant_number_of_queries(self, institution_a, scene):
        period = Period(date(2025, 5, 26), date(2025, 6, 22), LONDON)
        with tenant_context(institution_a):
            dashboard(period)  # the first query in a schema also sets the search path
            with CaptureQueriesContext(connection) as few:
                dashboard(period)
            mentor = make_mentor(institution_a, full_name="Dee Mentor")
            learner = make_learner(institution_a)
            for day in range(26, 31):
                booking = make_booking(mentor, learner, utc(f"2025-05-{day} 12:00"), status=S.COMPLETED)
                review(booking, 4)
                pay(booking, 1000, f"2025-05-{day} 11:00")
                earn(booking, 1000, 100, f"2025-05-{day} 13:00")
            with CaptureQueriesContext(connection) as more:
                figures = dashboard(period)
        assert figures.sessions[0].completed == 1 + 5
        assert len(more) == len(few) <= 10


class TestPeriod:
    def test_a_narrower_period_counts_only_its_own_dates(self, institution_a, scene):
        response = admin_client(institution_a).get(
            reverse("manage:analytics"), {"from": "2025-06-09", "to": "2025-06-15"}
        )
        chart = page_chart(response)
        assert chart["sessions"] == {
            "labels": ["2025-06-09"],
            "booked": [1],
            "completed": [1],
            "cancelled": [1],
            "no_show": [0],
        }
        assert chart["revenue"] == {
            "labels": ["2025-06"],
            "paid_minor": [2000],
            "refunded_minor": [500],
            "net_minor": [1500],
            "commission_minor": [150],
        }
        assert chart["rating"] == {"average": "3.00", "count": 1}

    def test_the_default_is_the_last_twelve_weeks(self, institution_a):
        response = admin_client(institution_a).get(reverse("manage:analytics"))
        assert response.status_code == 200
        period = response.context["period"]
        today = datetime.now(LONDON).date()
        assert period.end == today
        assert period.start.weekday() == 0 and (today - period.start).days // 7 == 11
        assert len(page_chart(response)["sessions"]["labels"]) == 12

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ({"from": "2025-06-10", "to": "2025-06-09"}, "must not be before the start"),
            ({"from": "2023-06-01", "to": "2025-06-01"}, "at most two years"),
            ({"from": "2025-06-01", "to": "soon"}, "Enter a valid date"),
            ({"from": "2025-06-01"}, "This field is required"),
        ],
    )
    def test_a_bad_period_is_a_form_error(self, institution_a, query, message):
        client = admin_client(institution_a)
        response = client.get(reverse("manage:analytics"), query)
        assert response.status_code == 400
        assert message in response.content.decode()
        assert len(page_chart(response)["sessions"]["labels"]) == 12  # the default period is shown
        export = client.get(reverse("manage:analytics_csv"), {"chart": "sessions", **query})
        assert export.status_code == 400 and message in export.content.decode()

    def test_two_years_is_the_longest_period(self, institution_a):
        client = admin_client(institution_a)
        longest = client.get(reverse("manage:analytics"), {"from": "2023-06-02", "to": "2025-06-01"})
        assert longest.status_code == 200
        assert longest.context["period"].days == 731
        assert len(page_chart(longest)["revenue"]["labels"]) == 25


class TestCsv:
    def test_each_csv_has_the_figures_of_its_chart(self, institution_a, scene):
        client = admin_client(institution_a)
        chart = page_chart(client.get(reverse("manage:analytics"), PERIOD))

        def export(name: str) -> list[list[str]]:
            return csv_rows(client.get(reverse("manage:analytics_csv"), {"chart": name, **PERIOD}))

        sessions = export("sessions")
        assert sessions[0] == ["Week starting", "Booked", "Completed", "Cancelled", "No-show"]
        s = chart["sessions"]
        assert sessions[1:] == [
            [label, str(b), str(c), str(x), str(n)]
            for label, b, c, x, n in zip(
                s["labels"], s["booked"], s["completed"], s["cancelled"], s["no_show"], strict=True
            )
        ]

        learners = export("learners")
        assert learners[1:] == [
            [label, str(n)] for label, n in zip(s["labels"], chart["learners"]["learners"], strict=True)
        ]

        revenue = export("revenue")
        assert revenue[0] == [
            "Month",
            "Paid (GBP)",
            "Refunded (GBP)",
            "Net revenue (GBP)",
            "Commission (GBP)",
        ]
        r = chart["revenue"]
        assert revenue[1:] == [
            [label, f"{paid / 100:.2f}", f"{back / 100:.2f}", f"{net / 100:.2f}", f"{cut / 100:.2f}"]
            for label, paid, back, net, cut in zip(
                r["labels"],
                r["paid_minor"],
                r["refunded_minor"],
                r["net_minor"],
                r["commission_minor"],
                strict=True,
            )
        ]
        assert revenue[1:] == [
            ["2025-05", "25.00", "25.00", "0.00", "2.50"],
            ["2025-06", "50.00", "5.00", "45.00", "4.50"],
        ]

        u = chart["utilisation"]
        assert export("utilisation")[1:] == [
            [name, f"{booked / 60:.2f}", f"{available / 60:.2f}", percent]
            for name, booked, available, percent in zip(
                u["labels"], u["booked_minutes"], u["available_minutes"], u["percent"], strict=True
            )
        ]

        t = chart["top_mentors"]
        assert export("top_mentors")[1:] == [
            [name, str(done), rating, str(reviews)]
            for name, done, rating, reviews in zip(
                t["labels"], t["completed"], t["rating"], t["reviews"], strict=True
            )
        ]

        assert export("rating") == [["From", "To", "Average rating", "Reviews"], [FROM, TO, "3.50", "4"]]

    def test_an_unknown_chart_is_refused(self, institution_a):
        response = admin_client(institution_a).get(reverse("manage:analytics_csv"), {"chart": "secrets"})
        assert response.status_code == 400

    def test_a_name_a_spreadsheet_would_run_is_quoted(self, institution_a):
        mentor = make_mentor(institution_a, full_name="=HYPERLINK(1)")
        learner = make_learner(institution_a)
        with tenant_context(institution_a):
            make_booking(mentor, learner, utc("2025-06-10 09:00"), status=S.COMPLETED)
        rows = csv_rows(
            admin_client(institution_a).get(
                reverse("manage:analytics_csv"), {"chart": "top_mentors", **PERIOD}
            )
        )
        assert rows[1][0] == "'=HYPERLINK(1)"


class TestAccess:
    @pytest.mark.parametrize("name", ["manage:analytics", "manage:analytics_csv"])
    def test_only_admins(self, institution_a, name):
        learner = make_learner(institution_a, email="learner@analytics.example")
        mentor = make_mentor(institution_a, email="mentor@analytics.example")
        query = {"chart": "sessions"}
        for email in (learner.email, mentor.user.email):
            client = HostClient(host_of(institution_a))
            sign_in(client, email)
            assert client.get(reverse(name), query).status_code == 403
        anonymous = HostClient(host_of(institution_a)).get(reverse(name), query)
        assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]

    def test_another_institutions_data_never_shows(self, institution_a, institution_b, scene):
        response = admin_client(institution_a).get(reverse("manage:analytics"), PERIOD)
        assert "Zed Other" not in response.content.decode()
        assert page_chart(response)["rating"] == EXPECTED_RATING
        # And B sees only its own: five completed sessions in the week of 2 June, at 77.77 each.
        chart = page_chart(admin_client(institution_b).get(reverse("manage:analytics"), PERIOD))
        assert chart["sessions"]["completed"] == [0, 5, 0, 0]
        assert chart["revenue"]["paid_minor"] == [0, 5 * 7777]
        assert chart["top_mentors"]["labels"] == ["Zed Other"]
        assert chart["rating"] == {"average": "1.00", "count": 5}
        # An admin of A is no one on B's site.
        client = admin_client(institution_a)
        client_b = HostClient(host_of(institution_b))
        client_b.cookies = client.cookies
        assert client_b.get(reverse("manage:analytics"), PERIOD).status_code in (302, 403)
