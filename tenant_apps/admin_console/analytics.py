"""The figures of the admins' analytics dashboard, aggregated in SQL over a period of dates.

Every figure is defined in docs/admin-console.md ("Analytics"). `dashboard()` runs a fixed number of
queries however many bookings there are: weeks, months and mentors are grouped by Postgres, and only
the per-mentor calendars (weekly hours and overrides, a few rows per mentor) are read into Python.
Amounts are integers in minor units.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import Coalesce, TruncMonth, TruncWeek

from tenant_apps.billing.models import Earning, Payment, Refund, pricing_policy
from tenant_apps.sessions.models import AvailabilityOverride, Booking, MentorProfile, WeeklyAvailability
from tenants.countries import CURRENCY_EXPONENTS

DEFAULT_WEEKS = 12
MAX_DAYS = 731  # two years, leap day included
TOP_MENTORS = 10

Status = Booking.Status
# Sessions that stood: the learner and the mentor were (or are) meeting at that time.
STOOD = (Status.CONFIRMED, Status.COMPLETED, Status.NO_SHOW)

CHARTS = ("sessions", "revenue", "learners", "utilisation", "top_mentors", "rating")


# --- The period -------------------------------------------------------------------------------------


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class Period:
    """From `start` to `end`, both dates included, in the institution's time zone."""

    start: date
    end: date
    zone: ZoneInfo

    @classmethod
    def default(cls, *, today: date, zone: ZoneInfo) -> Period:
        """The last 12 weeks: from the Monday 11 weeks before this week's, to today."""
        return cls(start=monday(today) - timedelta(weeks=DEFAULT_WEEKS - 1), end=today, zone=zone)

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(), tzinfo=self.zone)

    @property
    def until(self) -> datetime:
        """The first instant after the period (midnight after `end`)."""
        return datetime.combine(self.end + timedelta(days=1), time(), tzinfo=self.zone)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def weeks(self) -> list[date]:
        """The Mondays of the weeks the period touches, oldest first."""
        first, last = monday(self.start), monday(self.end)
        return [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]

    def months(self) -> list[date]:
        """The first days of the months the period touches, oldest first."""
        months = []
        year, month = self.start.year, self.start.month
        while (year, month) <= (self.end.year, self.end.month):
            months.append(date(year, month, 1))
            year, month = (year, month + 1) if month < 12 else (year + 1, 1)
        return months


# --- The figures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekSessions:
    week: date
    booked: int
    completed: int
    cancelled: int
    no_show: int


@dataclass(frozen=True)
class WeekLearners:
    week: date
    learners: int


@dataclass(frozen=True)
class MonthRevenue:
    month: date
    paid_minor: int
    refunded_minor: int
    commission_minor: int

    @property
    def net_minor(self) -> int:
        return self.paid_minor - self.refunded_minor


@dataclass(frozen=True)
class MentorUtilisation:
    mentor_id: int
    name: str
    booked_minutes: int
    available_minutes: int

    @property
    def percent(self) -> Decimal | None:
        """Booked ÷ available hours, in percent to one decimal; None without available hours."""
        if not self.available_minutes:
            return None
        return (Decimal(100 * self.booked_minutes) / self.available_minutes).quantize(
            Decimal("0.1"), ROUND_HALF_UP
        )


@dataclass(frozen=True)
class TopMentor:
    mentor_id: int
    name: str
    completed: int
    rating_sum: int
    rating_count: int

    @property
    def rating(self) -> Decimal | None:
        return average(self.rating_sum, self.rating_count)


@dataclass(frozen=True)
class Rating:
    total: int
    count: int

    @property
    def average(self) -> Decimal | None:
        return average(self.total, self.count)


@dataclass(frozen=True)
class Dashboard:
    period: Period
    currency: str
    sessions: list[WeekSessions]
    learners: list[WeekLearners]
    revenue: list[MonthRevenue]
    utilisation: list[MentorUtilisation]
    top_mentors: list[TopMentor]
    rating: Rating
    # Paid, refunded or commission amounts in the period in other currencies (from before the
    # institution changed its currency): currency → net paid, in minor units. Not in the charts.
    other_currencies: dict[str, int] = field(default_factory=dict)

    @property
    def exponent(self) -> int:
        return CURRENCY_EXPONENTS.get(self.currency.upper(), 2)


def average(total: int, count: int) -> Decimal | None:
    if not count:
        return None
    return (Decimal(total) / count).quantize(Decimal("0.01"), ROUND_HALF_UP)


def dashboard(period: Period) -> Dashboard:
    """Every figure of the dashboard for `period` (in the current institution's schema)."""
    currency = pricing_policy().currency
    bookings = Booking.objects.filter(starts_at__gte=period.since, starts_at__lt=period.until).order_by()
    sessions, learners = _weekly(bookings, period)
    revenue, others = _monthly_money(period, currency)
    per_mentor = _per_mentor(bookings)
    names = dict(MentorProfile.objects.order_by().values_list("pk", "user__full_name"))
    available = available_minutes(period)

    utilisation = [
        MentorUtilisation(
            mentor_id=mentor_id,
            name=names.get(mentor_id, ""),
            booked_minutes=per_mentor.get(mentor_id, {}).get("booked_minutes", 0),
            available_minutes=available.get(mentor_id, 0),
        )
        for mentor_id in set(available) | {m for m, row in per_mentor.items() if row["booked_minutes"]}
    ]
    utilisation.sort(key=lambda row: (row.percent is None, -(row.percent or 0), row.name, row.mentor_id))

    top = [
        TopMentor(
            mentor_id=mentor_id,
            name=names.get(mentor_id, ""),
            completed=row["completed"],
            rating_sum=row["rating_sum"],
            rating_count=row["rating_count"],
        )
        for mentor_id, row in per_mentor.items()
        if row["completed"]
    ]
    top.sort(key=lambda row: (-row.completed, -(row.rating or 0), row.name, row.mentor_id))

    rating = Rating(
        total=sum(row["rating_sum"] for row in per_mentor.values()),
        count=sum(row["rating_count"] for row in per_mentor.values()),
    )
    return Dashboard(
        period=period,
        currency=currency,
        sessions=sessions,
        learners=learners,
        revenue=revenue,
        utilisation=utilisation,
        top_mentors=top[:TOP_MENTORS],
        rating=rating,
        other_currencies=others,
    )


def _weekly(bookings, period: Period) -> tuple[list[WeekSessions], list[WeekLearners]]:
    """One query: each week's bookings by status, and its distinct learners with a session that stood."""
    rows = (
        bookings.annotate(week=TruncWeek("starts_at", tzinfo=period.zone))
        .values("week")
        .annotate(
            booked=Count("pk", filter=Q(status=Status.CONFIRMED)),
            completed=Count("pk", filter=Q(status=Status.COMPLETED)),
            cancelled=Count("pk", filter=Q(status=Status.CANCELLED)),
            no_show=Count("pk", filter=Q(status=Status.NO_SHOW)),
            learners=Count("learner", distinct=True, filter=Q(status__in=STOOD)),
        )
    )
    by_week = {row["week"].astimezone(period.zone).date(): row for row in rows}
    sessions, learners = [], []
    for week in period.weeks():
        row = by_week.get(week, {})
        sessions.append(
            WeekSessions(
                week=week,
                booked=row.get("booked", 0),
                completed=row.get("completed", 0),
                cancelled=row.get("cancelled", 0),
                no_show=row.get("no_show", 0),
            )
        )
        learners.append(WeekLearners(week=week, learners=row.get("learners", 0)))
    return sessions, learners


def _monthly_money(period: Period, currency: str) -> tuple[list[MonthRevenue], dict[str, int]]:
    """Three queries: payments by the month they were paid, refunds by the month they were paid
    back, commission by the month the mentor's earning was released."""
    zone = period.zone
    paid = (
        Payment.objects.filter(
            status__in=Payment.PAID_STATUSES, paid_at__gte=period.since, paid_at__lt=period.until
        )
        .annotate(month=TruncMonth("paid_at", tzinfo=zone))
        .values("month", "currency")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    refunded = (
        Refund.objects.filter(status=Refund.Status.SUCCEEDED)
        .annotate(at=Coalesce("completed_at", "created_at"))
        .filter(at__gte=period.since, at__lt=period.until)
        .annotate(month=TruncMonth("at", tzinfo=zone))
        .values("month", "currency")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    commission = (
        Earning.objects.filter(released_at__gte=period.since, released_at__lt=period.until)
        .annotate(month=TruncMonth("released_at", tzinfo=zone))
        .values("month", "currency")
        .annotate(total=Sum("commission_minor"))
        .order_by()
    )
    totals: dict[str, dict[tuple[date, str], int]] = {}
    others: dict[str, int] = defaultdict(int)
    for name, rows, sign in (("paid", paid, 1), ("refunded", refunded, -1), ("commission", commission, 0)):
        totals[name] = {}
        for row in rows:
            if row["currency"] != currency:
                others[row["currency"]] += sign * row["total"]
                continue
            totals[name][row["month"].astimezone(zone).date()] = row["total"]
    revenue = [
        MonthRevenue(
            month=month,
            paid_minor=totals["paid"].get(month, 0),
            refunded_minor=totals["refunded"].get(month, 0),
            commission_minor=totals["commission"].get(month, 0),
        )
        for month in period.months()
    ]
    return revenue, dict(sorted(others.items()))


def _per_mentor(bookings) -> dict[int, dict[str, int]]:
    """One query: each mentor's booked minutes (sessions that stood), completed sessions, and the
    ratings of the reviews of their bookings in the period."""
    length = ExpressionWrapper(F("ends_at") - F("starts_at"), output_field=DurationField())
    rows = bookings.values("mentor").annotate(
        booked=Sum(length, filter=Q(status__in=STOOD)),
        completed=Count("pk", filter=Q(status=Status.COMPLETED)),
        rating_sum=Sum("review__rating"),
        rating_count=Count("review"),
    )
    return {
        row["mentor"]: {
            "booked_minutes": int(row["booked"].total_seconds() // 60) if row["booked"] else 0,
            "completed": row["completed"],
            "rating_sum": row["rating_sum"] or 0,
            "rating_count": row["rating_count"],
        }
        for row in rows
    }


# --- Available hours --------------------------------------------------------------------------------


def _minutes(start: time, end: time) -> int:
    return (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute)


def _union_minutes(windows: list[tuple[time, time]]) -> int:
    """Minutes covered by the windows, overlaps counted once."""
    total, current_start, current_end = 0, None, None
    for start, end in sorted(windows):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += _minutes(current_start, current_end)
            current_start, current_end = start, end
        elif end > current_end:
            current_end = end
    if current_end is not None:
        total += _minutes(current_start, current_end)
    return total


def available_minutes(period: Period) -> dict[int, int]:
    """Each mentor's available minutes over the period's dates (two queries): the weekly hours of
    each date's weekday, except on a day off, plus extra hours; overlapping windows count once."""
    weekly: dict[int, dict[int, list[tuple[time, time]]]] = defaultdict(lambda: defaultdict(list))
    for mentor_id, weekday, start, end in WeeklyAvailability.objects.order_by().values_list(
        "mentor_id", "weekday", "start_time", "end_time"
    ):
        weekly[mentor_id][weekday].append((start, end))
    overrides: dict[int, dict[date, list[tuple[str, time | None, time | None]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for mentor_id, day, kind, start, end in (
        AvailabilityOverride.objects.filter(date__gte=period.start, date__lte=period.end)
        .order_by()
        .values_list("mentor_id", "date", "kind", "start_time", "end_time")
    ):
        overrides[mentor_id][day].append((kind, start, end))

    # How many of the period's dates fall on each weekday.
    full_weeks, rest = divmod(period.days, 7)
    weekday_count = [full_weeks] * 7
    for offset in range(rest):
        weekday_count[(period.start.weekday() + offset) % 7] += 1

    result: dict[int, int] = {}
    for mentor_id in set(weekly) | set(overrides):
        days = weekly.get(mentor_id, {})
        per_weekday = {weekday: _union_minutes(windows) for weekday, windows in days.items()}
        total = sum(minutes * weekday_count[weekday] for weekday, minutes in per_weekday.items())
        for day, items in overrides.get(mentor_id, {}).items():
            total -= per_weekday.get(day.weekday(), 0)  # this date is counted below instead
            off = any(kind == AvailabilityOverride.Kind.OFF for kind, _, _ in items)
            windows = [] if off else list(days.get(day.weekday(), []))
            windows += [
                (start, end)
                for kind, start, end in items
                if kind == AvailabilityOverride.Kind.EXTRA and start and end
            ]
            total += _union_minutes(windows)
        if total:
            result[mentor_id] = total
    return result


# --- Tables: what the CSV exports, and the page's tables --------------------------------------------


def _major(amount_minor: int, exponent: int) -> str:
    return f"{Decimal(amount_minor).scaleb(-exponent):.{exponent}f}"


def _hours(minutes: int) -> str:
    return f"{Decimal(minutes) / 60:.2f}"


def _text(value: Decimal | None) -> str:
    return "" if value is None else str(value)


def table(data: Dashboard, chart: str) -> tuple[list[str], list[list[str | int]]]:
    """One chart's figures as a header and rows (amounts in major units, exactly)."""
    if chart == "sessions":
        return ["Week starting", "Booked", "Completed", "Cancelled", "No-show"], [
            [row.week.isoformat(), row.booked, row.completed, row.cancelled, row.no_show]
            for row in data.sessions
        ]
    if chart == "learners":
        return ["Week starting", "Active learners"], [
            [row.week.isoformat(), row.learners] for row in data.learners
        ]
    if chart == "revenue":
        c, e = data.currency, data.exponent
        return [
            "Month",
            f"Paid ({c})",
            f"Refunded ({c})",
            f"Net revenue ({c})",
            f"Commission ({c})",
        ], [
            [
                row.month.strftime("%Y-%m"),
                _major(row.paid_minor, e),
                _major(row.refunded_minor, e),
                _major(row.net_minor, e),
                _major(row.commission_minor, e),
            ]
            for row in data.revenue
        ]
    if chart == "utilisation":
        return ["Mentor", "Booked hours", "Available hours", "Utilisation (%)"], [
            [row.name, _hours(row.booked_minutes), _hours(row.available_minutes), _text(row.percent)]
            for row in data.utilisation
        ]
    if chart == "top_mentors":
        return ["Mentor", "Completed sessions", "Average rating", "Reviews"], [
            [row.name, row.completed, _text(row.rating), row.rating_count] for row in data.top_mentors
        ]
    if chart == "rating":
        return ["From", "To", "Average rating", "Reviews"], [
            [
                data.period.start.isoformat(),
                data.period.end.isoformat(),
                _text(data.rating.average),
                data.rating.count,
            ]
        ]
    raise ValueError(f"unknown chart {chart!r}")


def chart_data(data: Dashboard) -> dict:
    """What the page's script draws (json_script): amounts in minor units, scaled by the script."""
    return {
        "currency": data.currency,
        "exponent": data.exponent,
        "sessions": {
            "labels": [row.week.isoformat() for row in data.sessions],
            "booked": [row.booked for row in data.sessions],
            "completed": [row.completed for row in data.sessions],
            "cancelled": [row.cancelled for row in data.sessions],
            "no_show": [row.no_show for row in data.sessions],
        },
        "learners": {
            "labels": [row.week.isoformat() for row in data.learners],
            "learners": [row.learners for row in data.learners],
        },
        "revenue": {
            "labels": [row.month.strftime("%Y-%m") for row in data.revenue],
            "paid_minor": [row.paid_minor for row in data.revenue],
            "refunded_minor": [row.refunded_minor for row in data.revenue],
            "net_minor": [row.net_minor for row in data.revenue],
            "commission_minor": [row.commission_minor for row in data.revenue],
        },
        "utilisation": {
            "labels": [row.name for row in data.utilisation],
            "booked_minutes": [row.booked_minutes for row in data.utilisation],
            "available_minutes": [row.available_minutes for row in data.utilisation],
            "percent": [_text(row.percent) for row in data.utilisation],
        },
        "top_mentors": {
            "labels": [row.name for row in data.top_mentors],
            "completed": [row.completed for row in data.top_mentors],
            "rating": [_text(row.rating) for row in data.top_mentors],
            "reviews": [row.rating_count for row in data.top_mentors],
        },
        "rating": {"average": _text(data.rating.average), "count": data.rating.count},
    }
