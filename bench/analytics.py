"""Admin analytics benchmark: the dashboard's server work over 100,000 bookings in a throwaway institution."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from bench.common import DOC, drop_institution, machine, sigterm_as_interrupt, write_section  # noqa: E402
from tenant_apps.accounts.models import User  # noqa: E402
from tenant_apps.admin_console.analytics import MAX_DAYS, Period, dashboard  # noqa: E402
from tenant_apps.billing.models import Earning, Gateways, Payment, Refund  # noqa: E402
from tenant_apps.sessions.models import Booking, MentorProfile, Review, WeeklyAvailability  # noqa: E402
from tenants.services import InstitutionSignup, institution_provision  # noqa: E402

SEED = 20261204
GOAL_MS = 200.0
ZONE = "Europe/London"
CURRENCY = "GBP"
COMMISSION_BPS = 1000
BATCH = 5000

S = Booking.Status
# Past sessions: how they ended. Future ones: still booked, or already cancelled or awaiting approval.
PAST_MIX = (
    (S.COMPLETED, 70),
    (S.CANCELLED, 11),
    (S.NO_SHOW, 4),
    (S.DECLINED, 3),
    (S.EXPIRED, 3),
    (S.RESCHEDULED, 3),
    (S.CONFIRMED, 6),
)
FUTURE_MIX = ((S.CONFIRMED, 85), (S.CANCELLED, 10), (S.REQUESTED, 5))
PAID_STATUSES = {S.COMPLETED, S.CANCELLED, S.NO_SHOW, S.CONFIRMED, S.RESCHEDULED}
PRICES = (1500, 2000, 2500, 3000, 4000, 5000)
LENGTHS = (30, 45, 60)
WINDOWS = ((dt.time(8), dt.time(12)), (dt.time(13), dt.time(17)), (dt.time(17), dt.time(20)))


@dataclass(frozen=True)
class Counts:
    mentors: int
    learners: int
    bookings: int
    payments: int
    refunds: int
    earnings: int
    reviews: int


def seed(*, mentors: int, learners: int, bookings: int, rng: random.Random) -> Counts:
    """Mentors with weekly hours, learners, and bookings spread over the last 23 months and the
    next one, with payments (and refunds, earnings) for the paid ones and reviews of most
    completed ones. Every mentor's sessions start on distinct hours, so live ones never overlap."""
    password = make_password(None)  # unusable: nobody signs in as these
    mentor_users = [
        User(
            email=f"mentor{i}@bench.example",
            full_name=f"Mentor {i:03d}",
            role=User.Role.MENTOR,
            mentor_status=User.MentorStatus.APPROVED,
            timezone=ZONE,
            password=password,
        )
        for i in range(mentors)
    ]
    learner_users = [
        User(email=f"learner{i}@bench.example", full_name=f"Learner {i:04d}", password=password)
        for i in range(learners)
    ]
    User.objects.bulk_create(mentor_users + learner_users, batch_size=BATCH)
    profiles = [
        MentorProfile(user=user, session_lengths=[30, 45, 60], price_minor=rng.choice((0, *PRICES)))
        for user in mentor_users
    ]
    MentorProfile.objects.bulk_create(profiles, batch_size=BATCH)
    WeeklyAvailability.objects.bulk_create(
        [
            WeeklyAvailability(mentor=profile, weekday=weekday, start_time=start, end_time=end)
            for profile in profiles
            for weekday in rng.sample(range(7), rng.randint(2, 5))
            for start, end in rng.sample(WINDOWS, rng.randint(1, 2))
        ],
        batch_size=BATCH,
    )

    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    first = now - dt.timedelta(days=700)
    hours = [first + dt.timedelta(days=day, hours=hour) for day in range(730) for hour in range(8, 20)]
    per_mentor = -(-bookings // mentors)
    rows: list[Booking] = []
    for profile in profiles:
        for starts_at in rng.sample(hours, min(per_mentor, bookings - len(rows))):
            past = starts_at < now
            statuses, weights = zip(*(PAST_MIX if past else FUTURE_MIX), strict=True)
            status = rng.choices(statuses, weights)[0]
            ends_at = starts_at + dt.timedelta(minutes=rng.choice(LENGTHS))
            rows.append(
                Booking(
                    mentor=profile,
                    learner=rng.choice(learner_users),
                    starts_at=starts_at,
                    ends_at=ends_at,
                    blocked=DateTimeTZRange(starts_at, ends_at),
                    status=status,
                    price_minor=profile.price_minor,
                    currency=CURRENCY,
                )
            )
    Booking.objects.bulk_create(rows, batch_size=BATCH)

    payments, refunds, earnings, reviews = [], [], [], []
    for booking in rows:
        if booking.status == S.COMPLETED and rng.random() < 0.6:
            rating = rng.choices((1, 2, 3, 4, 5), (2, 3, 10, 35, 50))[0]
            reviews.append(Review(booking=booking, rating=rating))
        if not booking.price_minor or booking.status not in PAID_STATUSES:
            continue
        paid_at = booking.starts_at - dt.timedelta(days=rng.randint(1, 14), minutes=rng.randint(0, 600))
        refunded = booking.price_minor if booking.status == S.CANCELLED else 0
        payment = Payment(
            reference=f"pay_{len(payments)}",
            booking=booking,
            learner=booking.learner,
            gateway=Gateways.SANDBOX,
            amount_minor=booking.price_minor,
            currency=CURRENCY,
            refunded_minor=refunded,
            status=Payment.Status.REFUNDED if refunded else Payment.Status.SUCCEEDED,
            paid_at=paid_at,
        )
        payments.append(payment)
        if refunded:
            at = paid_at + dt.timedelta(days=rng.randint(0, 5))
            refunds.append((payment, refunded, at))
        if booking.status == S.COMPLETED:
            commission = booking.price_minor * COMMISSION_BPS // 10_000
            earnings.append(
                Earning(
                    booking=booking,
                    mentor=booking.mentor,
                    gross_minor=booking.price_minor,
                    commission_minor=commission,
                    amount_minor=booking.price_minor - commission,
                    currency=CURRENCY,
                    released_at=booking.ends_at + dt.timedelta(hours=1),
                )
            )
    Payment.objects.bulk_create(payments, batch_size=BATCH)
    Refund.objects.bulk_create(
        [
            Refund(
                reference=f"ref_{i}",
                payment=payment,
                amount_minor=amount,
                currency=CURRENCY,
                kind=Refund.Kind.CANCELLATION,
                status=Refund.Status.SUCCEEDED,
                completed_at=at,
            )
            for i, (payment, amount, at) in enumerate(refunds)
        ],
        batch_size=BATCH,
    )
    Earning.objects.bulk_create(earnings, batch_size=BATCH)
    Review.objects.bulk_create(reviews, batch_size=BATCH)
    return Counts(mentors, learners, len(rows), len(payments), len(refunds), len(earnings), len(reviews))


# --- Measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    shape: str
    runs: int
    queries: int
    median: float
    p90: float
    minimum: float
    maximum: float


def timed(shape: str, work: Callable[[], int], runs: int, warmup: int) -> Summary:
    """`work` returns the number of queries it ran (recorded by Django with DEBUG on, as in dev)."""
    queries = 0
    for _ in range(warmup):
        queries = work()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        queries = work()
        timings.append((time.perf_counter() - started) * 1000)
    p90 = statistics.quantiles(timings, n=10, method="inclusive")[8] if len(timings) > 1 else timings[0]
    return Summary(shape, runs, queries, statistics.median(timings), p90, min(timings), max(timings))


def measure(institution, admin: User, runs: int) -> list[Summary]:
    zone = ZoneInfo(ZONE)
    today = timezone.now().astimezone(zone).date()
    default = Period.default(today=today, zone=zone)
    longest = Period(start=today - dt.timedelta(days=MAX_DAYS - 1), end=today, zone=zone)
    client = Client(HTTP_HOST=f"{institution.slug}.{settings.PLATFORM_DOMAIN}")
    client.force_login(admin)
    url = reverse("manage:analytics", urlconf=settings.ROOT_URLCONF)

    def page(period: Period | None) -> Callable[[], int]:
        query = {"from": period.start.isoformat(), "to": period.end.isoformat()} if period else {}

        def work() -> int:
            connection.queries_log.clear()
            response = client.get(url, query)
            assert response.status_code == 200, response.status_code
            return len(connection.queries_log)

        return work

    def selectors(period: Period) -> Callable[[], int]:
        def work() -> int:
            connection.queries_log.clear()
            dashboard(period)
            return len(connection.queries_log)

        return work

    return [
        timed("page, default period (last 12 weeks)", page(None), runs, warmup=2),
        timed("page, two years (the longest period)", page(longest), runs, warmup=2),
        timed("selectors only, last 12 weeks", selectors(default), runs, warmup=2),
        timed("selectors only, two years", selectors(longest), runs, warmup=2),
    ]


# --- Reporting ----------------------------------------------------------------------------------


def table(summaries: list[Summary]) -> str:
    lines = [
        "| What is timed | Runs | Queries | Median (ms) | p90 (ms) | Min (ms) | Max (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.shape} | {s.runs} | {s.queries} | {s.median:.1f} | {s.p90:.1f} | {s.minimum:.1f} "
            f"| {s.maximum:.1f} |"
        )
    return "\n".join(lines)


def section(command: str, summaries: list[Summary], counts: Counts, seconds: float, host: dict) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    default = summaries[0]
    verdict = "met" if default.median <= GOAL_MS else "**not met**"
    worst = max(s.median for s in summaries)
    return f"""## Admin analytics: the dashboard over {counts.bookings:,} bookings

```sh
{command}
```

- Date: {now}
- Machine: {host["nproc"]} CPUs (`nproc`), {host["cpu"]}; PostgreSQL {host["postgres"]} on the same machine

{table(summaries)}

Goal: median ≤ {GOAL_MS:.0f} ms for the dashboard page over the default period — {verdict}
({default.median:.1f} ms; the slowest shape's median is {worst:.1f} ms).

- A throwaway institution (`tenants.services.institution_provision`, {ZONE}, {CURRENCY}) gets, from a
  seeded random generator (seed {SEED}): {counts.mentors} mentors with 2–5 weekdays of 1–2 weekly
  windows each, {counts.learners:,} learners, and {counts.bookings:,} one-to-one bookings of 30–60
  minutes on distinct hours per mentor (08:00–20:00 UTC), spread over the last 23 months and the
  next month. Past ones are completed 70 %, cancelled 11 %, no-show 4 %, declined, expired or
  rescheduled 3 % each, still confirmed 6 %; future ones confirmed 85 %, cancelled 10 %, requested
  5 %. Paid mentors' bookings that stood or were cancelled have a payment ({counts.payments:,}),
  cancelled ones a full refund ({counts.refunds:,}), completed ones an earning with 10 % commission
  ({counts.earnings:,}); 60 % of completed sessions have a review ({counts.reviews:,}). All made
  with `bulk_create` in {seconds:.0f} s, then `ANALYZE`.
- "page" is `GET /manage/analytics/` through Django's test `Client` with the institution's Host and
  a signed-in admin: middleware, the selectors, the template and the chart data. "selectors only"
  is `analytics.dashboard(period)`. Each is run {default.runs} times after 2 unrecorded runs;
  "Queries" counts the queries of one run (the page's include the session and the user).
- The institution, its domain and schema are dropped at the end (also on error or Ctrl-C)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=100_000, help="bookings to create (default 100000)")
    parser.add_argument("--mentors", type=int, default=200, help="mentors (default 200)")
    parser.add_argument("--learners", type=int, default=2000, help="learners (default 2000)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per shape (default 20)")
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    args = parser.parse_args()
    if min(args.bookings, args.mentors, args.learners, args.runs) < 1:
        parser.error("--bookings, --mentors, --learners and --runs must be at least 1")
    if args.bookings > args.mentors * 730 * 12:
        parser.error("too many bookings for the mentors' hours: add mentors")

    settings_module = os.environ["DJANGO_SETTINGS_MODULE"]
    command = f"DJANGO_SETTINGS_MODULE={settings_module} DATABASE_URL=… .venv/bin/python bench/analytics.py"
    defaults = (100_000, 200, 2000, 20)
    if (args.bookings, args.mentors, args.learners, args.runs) != defaults:
        command += f" --bookings {args.bookings} --mentors {args.mentors} --learners {args.learners}"
        command += f" --runs {args.runs}"
    subdomain = f"bench-an-{secrets.token_hex(3)}"
    rng = random.Random(SEED)
    try:
        # The new admin's confirmation email goes nowhere instead of to the console.
        with (
            sigterm_as_interrupt(),
            override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"),
        ):
            print(f"Provisioning {subdomain} …")
            institution = institution_provision(
                signup=InstitutionSignup(
                    name="Bench analytics",
                    subdomain=subdomain,
                    country="GB",
                    currency=CURRENCY,
                    timezone=ZONE,
                    admin_full_name="Bench Admin",
                    admin_email=f"admin@{subdomain}.example",
                    admin_password=secrets.token_urlsafe(16),
                )
            ).institution
            with tenant_context(institution):
                print(f"Creating {args.bookings:,} bookings, their payments and reviews …")
                started = time.perf_counter()
                counts = seed(mentors=args.mentors, learners=args.learners, bookings=args.bookings, rng=rng)
                seconds = time.perf_counter() - started
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE")
                admin = User.objects.get(email=f"admin@{subdomain}.example")
                host = machine()
                print(f"Timing the dashboard, {args.runs} runs per shape …")
                summaries = measure(institution, admin, args.runs)
    except KeyboardInterrupt:
        print("\nInterrupted: cleaning up.", file=sys.stderr)
        return 130
    finally:
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if drop_institution(subdomain):
                print(f"Dropped {subdomain} (institution, domain and schema).")
        finally:
            signal.signal(signal.SIGTERM, previous)

    print()
    print(table(summaries))
    if not args.no_doc:
        write_section("analytics", section(command, summaries, counts, seconds, host))
        print(f"Wrote the results to {DOC.relative_to(REPO_ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
