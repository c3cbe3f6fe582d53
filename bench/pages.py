"""The learner's main pages: server time of each through the whole middleware stack, with realistic data.

A throw-away institution gets 100 mentors (profiles, expertise, weekly hours, prices, reviews) and
5,000 bookings spread over learners and mentors; one benchmark learner holds 200 of them (past and
upcoming), with payments, receipts, notifications and group-session seats. Each page is requested
with Django's test `Client` signed in as that learner, DEBUG off, and timed from the request to the
response (the full middleware stack, the view, the template); the CPU time of this process is
recorded beside it (the Python share, steadier than wall time on a busy machine). Two baselines run
in the same rounds: `/healthz` (no institution, no session) and the unread-count JSON (institution,
session, user and one query): what any request costs before a page does its own work.

    DJANGO_SETTINGS_MODULE=config.settings.dev DATABASE_URL=… REDIS_URL=… .venv/bin/python bench/pages.py
    … bench/pages.py --quick                              # 15 runs per page (make bench-quick)
    … bench/pages.py --profile my_sessions,directory      # pyinstrument profiles; no doc update
"""

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
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402
from django.conf import settings  # noqa: E402

# Production's DEBUG whatever the settings module: no query log, no debug templates.
settings.DEBUG = False
django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from bench.common import DOC, drop_institution, machine, sigterm_as_interrupt, write_section  # noqa: E402
from tenant_apps.accounts.models import User  # noqa: E402
from tenant_apps.billing.models import Gateways, Payment, Refund, pricing_policy  # noqa: E402
from tenant_apps.notifications.models import Event, Notification  # noqa: E402
from tenant_apps.sessions.models import (  # noqa: E402
    Booking,
    BookingTransition,
    Enrollment,
    GroupSession,
    Material,
    MentorProfile,
    Review,
    WeeklyAvailability,
)
from tenant_apps.sessions.search import mentor_search_refresh  # noqa: E402
from tenants.services import InstitutionSignup, institution_provision  # noqa: E402

SEED = 20261126
GOAL_MS = 50.0
MENTORS = 100
LEARNERS = 400
BOOKINGS = 5000
# The benchmark learner's share: past and upcoming 1:1 sessions.
MY_PAST, MY_UPCOMING = 170, 30
GROUP_SESSIONS = 60
CURRENCY = "GBP"

FIRST_NAMES = (  # noqa: SIM905 - a word list reads best as words
    "Aarav Aisha Alejandro Amara Ana Andrei Anika Ben Carlos Chen Chidi Chloe Daniel Dmitri Elena "
    "Emeka Emma Fatima Felix Grace Hana Hiroshi Ibrahim Ines Isabel Jamal Jin Jonas Kavya Kofi Lars "
    "Layla Leila Liam Lucia Maya Mateo Mei Mohammed Nadia Nikhil Noah Olga Omar Priya Rahul Ravi Rosa"
).split()
LAST_NAMES = (  # noqa: SIM905 - a word list reads best as words
    "Abara Ahmed Andersen Bauer Brown Castillo Chen Costa Dubois Eriksen Fernandes Garcia Gupta "
    "Haddad Hansen Ito Ivanova Johnson Kapoor Kim Kowalski Kumar Larsen Lee Lopez Martin Meyer Mensah"
).split()
TAGS = (  # noqa: SIM905 - a word list reads best as words
    "python javascript typescript react django rust go java sql postgres kubernetes docker aws "
    "security machine-learning data-science statistics product-management ux-design career-change "
    "interviews leadership public-speaking writing marketing finance startups system-design testing"
).split()
LANGUAGES = ("English", "Spanish", "French", "German", "Hindi", "Portuguese")
TIMEZONES = ("Europe/London", "America/New_York", "Asia/Kolkata", "Europe/Berlin", "UTC")
PRICES = (0, 1500, 2000, 2500, 3000, 4000, 5000, 7500)
TOPICS = ("", "", "Mock interview", "CV review", "Career change", "System design practice", "Code review")
COMMENTS = (
    "",
    "Very helpful, clear and practical advice.",
    "We went through my CV line by line. Worth it.",
    "Great mock interview, honest feedback.",
    "Knew the subject deeply and explained it well.",
)


# --- The data -----------------------------------------------------------------------------------


@dataclass
class Scene:
    """What the pages are requested for."""

    learner: User
    mentor_id: int  # a mentor with many reviews
    past_booking_id: int  # completed, reviewed, paid, with materials
    upcoming_booking_id: int  # confirmed and paid: reschedule and cancel are offered
    live_booking_id: int  # starting in a few minutes: its room is open
    group_id: int
    receipt_reference: str


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def seed(rng: random.Random) -> Scene:
    now = timezone.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    password = make_password(None)
    policy = pricing_policy()
    policy.gateway = Gateways.SANDBOX
    policy.save()

    mentor_users = [
        User(
            email=f"mentor{i}@bench.example",
            full_name=_name(rng),
            role=User.Role.MENTOR,
            mentor_status=User.MentorStatus.APPROVED,
            timezone=rng.choice(TIMEZONES),
            password=password,
            email_verified_at=now,
        )
        for i in range(MENTORS)
    ]
    learners = [
        User(
            email=f"learner{i}@bench.example",
            full_name=_name(rng),
            role=User.Role.LEARNER,
            timezone=rng.choice(TIMEZONES),
            password=password,
            email_verified_at=now,
        )
        for i in range(LEARNERS)
    ]
    User.objects.bulk_create(mentor_users + learners, batch_size=500)
    me = learners[0]

    profiles = []
    for user in mentor_users:
        tags = rng.sample(TAGS, rng.randint(2, 8))
        profiles.append(
            MentorProfile(
                user=user,
                headline=f"{tags[0].replace('-', ' ').title()} mentor, {rng.randint(2, 25)} years",
                bio=f"I help people with {tags[0]} and {tags[-1]}. " * rng.randint(2, 6),
                expertise=tags,
                languages=sorted(set(rng.choices(LANGUAGES, k=rng.randint(1, 3)))),
                years_experience=rng.randint(1, 30),
                session_lengths=sorted(rng.sample([30, 45, 60], rng.randint(1, 3))),
                price_minor=rng.choice(PRICES),
                minimum_notice_minutes=0,
                next_free_slot_at=now + dt.timedelta(hours=rng.randint(1, 24 * 14)),
                next_free_slot_checked_at=timezone.now(),
            )
        )
    MentorProfile.objects.bulk_create(profiles, batch_size=500)
    WeeklyAvailability.objects.bulk_create(
        [
            WeeklyAvailability(mentor=profile, weekday=day, start_time=dt.time(9), end_time=dt.time(17))
            for profile in profiles
            for day in range(5)
        ],
        batch_size=1000,
    )

    # Each mentor's bookings take distinct hours, so no two live bookings of a mentor overlap; the
    # two hours around now are kept free for the live-room booking.
    per_mentor = BOOKINGS // MENTORS
    hours = [h for h in range(-365 * 24, 56 * 24) if abs(h) > 2 and 8 <= (now.hour + h) % 24 <= 17]
    slots: list[tuple[MentorProfile, dt.datetime]] = []
    for profile in profiles:
        slots += [(profile, now + dt.timedelta(hours=h)) for h in rng.sample(hours, per_mentor)]
    rng.shuffle(slots)
    past_slots = [s for s in slots if s[1] < now]
    future_slots = [s for s in slots if s[1] >= now]
    mine = past_slots[:MY_PAST] + future_slots[:MY_UPCOMING]
    others = past_slots[MY_PAST:] + future_slots[MY_UPCOMING:]

    def status_for(starts_at: dt.datetime) -> str:
        roll = rng.random()
        if starts_at < now:
            if roll < 0.80:
                return Booking.Status.COMPLETED
            if roll < 0.90:
                return Booking.Status.CANCELLED
            return Booking.Status.NO_SHOW if roll < 0.95 else Booking.Status.DECLINED
        if roll < 0.85:
            return Booking.Status.CONFIRMED
        return Booking.Status.REQUESTED if roll < 0.95 else Booking.Status.CANCELLED

    bookings = []
    for index, (profile, starts_at) in enumerate(mine + others):
        learner = me if index < len(mine) else rng.choice(learners[1:])
        minutes = rng.choice(profile.session_lengths)
        ends_at = starts_at + dt.timedelta(minutes=minutes)
        bookings.append(
            Booking(
                mentor=profile,
                learner=learner,
                starts_at=starts_at,
                ends_at=ends_at,
                blocked=DateTimeTZRange(starts_at, ends_at, "[)"),
                status=status_for(starts_at),
                price_minor=profile.price_minor,
                currency=CURRENCY,
                topic=rng.choice(TOPICS),
                cancel_reason="Something came up at work.",
            )
        )
    for booking in bookings:
        if booking.status != Booking.Status.CANCELLED:
            booking.cancel_reason = ""
    # The benchmark learner's pages: one past completed session, one upcoming confirmed, one live now.
    my_past = next(b for b in bookings[:MY_PAST] if b.price_minor)
    my_past.status = Booking.Status.COMPLETED
    my_upcoming = next(b for b in bookings[MY_PAST : MY_PAST + MY_UPCOMING] if b.price_minor)
    my_upcoming.status = Booking.Status.CONFIRMED
    live_mentor = profiles[0]
    live_start = now - dt.timedelta(minutes=55)  # started five minutes ago
    live = Booking(
        mentor=live_mentor,
        learner=me,
        starts_at=live_start,
        ends_at=live_start + dt.timedelta(minutes=60),
        blocked=DateTimeTZRange(live_start, live_start + dt.timedelta(minutes=60), "[)"),
        status=Booking.Status.CONFIRMED,
        price_minor=0,
        currency=CURRENCY,
        topic="Live now",
    )
    bookings.append(live)
    Booking.objects.bulk_create(bookings, batch_size=1000)

    created = {Booking.Status.REQUESTED: Booking.Status.REQUESTED}
    transitions = []
    for booking in bookings:
        first = created.get(booking.status, Booking.Status.CONFIRMED)
        transitions.append(
            BookingTransition(booking=booking, from_status="", to_status=first, actor=booking.learner)
        )
        if booking.status != first:
            transitions.append(
                BookingTransition(
                    booking=booking, from_status=first, to_status=booking.status, actor=booking.mentor.user
                )
            )
    BookingTransition.objects.bulk_create(transitions, batch_size=2000)

    reviews = [
        Review(
            booking=booking,
            rating=rng.choice((3, 4, 4, 5, 5, 5)),
            comment=rng.choice(COMMENTS),
            mentor_reply="Thank you!" if rng.random() < 0.3 else "",
        )
        for booking in bookings
        if booking.status == Booking.Status.COMPLETED and (booking is my_past or rng.random() < 0.6)
    ]
    Review.objects.bulk_create(reviews, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE mentoring_mentorprofile AS p
               SET rating_average = r.average, rating_count = r.count
              FROM (SELECT b.mentor_id, round(avg(v.rating), 2) AS average, count(*) AS count
                      FROM mentoring_review v JOIN mentoring_booking b ON b.id = v.booking_id
                     GROUP BY b.mentor_id) AS r
             WHERE p.id = r.mentor_id
            """
        )

    payments, refunds = [], []
    for booking in bookings:
        if not booking.price_minor or booking.status in (Booking.Status.REQUESTED, Booking.Status.DECLINED):
            continue
        cancelled = booking.status == Booking.Status.CANCELLED
        payment = Payment(
            reference=f"pay_{booking.pk}",
            booking=booking,
            learner=booking.learner,
            gateway=Gateways.SANDBOX,
            amount_minor=booking.price_minor,
            currency=CURRENCY,
            refunded_minor=booking.price_minor if cancelled else 0,
            status=Payment.Status.REFUNDED if cancelled else Payment.Status.SUCCEEDED,
            provider_ref=f"sb_{booking.pk}",
            paid_at=booking.starts_at - dt.timedelta(days=2),
        )
        payments.append(payment)
        if cancelled:
            refunds.append(
                Refund(
                    reference=f"ref_{booking.pk}",
                    payment=payment,
                    amount_minor=booking.price_minor,
                    currency=CURRENCY,
                    kind=Refund.Kind.CANCELLATION,
                    status=Refund.Status.SUCCEEDED,
                )
            )
    Payment.objects.bulk_create(payments, batch_size=1000)
    Refund.objects.bulk_create(refunds, batch_size=1000)

    Material.objects.bulk_create(
        [
            Material(
                booking=my_past,
                uploaded_by=me if i % 2 else my_past.mentor.user,
                file=f"materials/{my_past.pk}/{secrets.token_hex(16)}",
                original_name=f"notes-{i + 1}.pdf",
                content_type="application/pdf",
                size=rng.randint(20_000, 2_000_000),
            )
            for i in range(4)
        ]
    )

    events = (Event.BOOKING_CONFIRMED, Event.REMINDER_24H, Event.PAYMENT_RECEIVED, Event.REVIEW_REQUESTED)
    notifications = []
    for booking in bookings:
        for recipient in (booking.learner, booking.mentor.user):
            for event in rng.sample(events, 2):
                notifications.append(
                    Notification(
                        recipient=recipient,
                        event=event,
                        title=f"{Event(event).label}: {booking.starts_at:%a %d %b, %H:%M}",
                        body=f"With {booking.mentor.user.full_name} on {booking.starts_at:%d %b}.",
                        url=f"/sessions/{booking.pk}/",
                        read_at=None if booking.starts_at > now - dt.timedelta(days=3) else booking.starts_at,
                    )
                )
    Notification.objects.bulk_create(notifications, batch_size=2000)
    # Spread creation times like the bookings they are about (auto_now_add wrote "now").
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE notifications_notification AS n
               SET created_at = b.starts_at - interval '1 day' - (n.id % 97) * interval '1 minute'
              FROM mentoring_booking AS b
             WHERE n.url = '/sessions/' || b.id || '/'
            """
        )

    groups = []
    for i in range(GROUP_SESSIONS):
        profile = rng.choice(profiles)
        starts_at = now + dt.timedelta(days=rng.randint(1, 55), hours=rng.randint(0, 8))
        groups.append(
            GroupSession(
                mentor=profile,
                title=f"{rng.choice(TAGS).replace('-', ' ').title()} workshop #{i + 1}",
                description="A hands-on session in a small group.",
                starts_at=starts_at,
                ends_at=starts_at + dt.timedelta(minutes=90),
                capacity=rng.randint(8, 30),
                price_minor=rng.choice(PRICES),
                currency=CURRENCY,
            )
        )
    GroupSession.objects.bulk_create(groups)
    enrollments = []
    for index, group in enumerate(groups):
        seats = rng.sample(learners[1:], rng.randint(3, group.capacity))
        if index % 10 == 0:
            seats.append(me)
        enrollments += [
            Enrollment(group_session=group, learner=learner, status=Enrollment.Status.ENROLLED)
            for learner in seats
        ]
    Enrollment.objects.bulk_create(enrollments, batch_size=2000)

    mentor_search_refresh()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    reviewed_most = (
        Review.objects.values("booking__mentor").order_by().annotate(n=django.db.models.Count("pk"))
    )
    top_mentor = max(reviewed_most, key=lambda row: row["n"])["booking__mentor"]
    return Scene(
        learner=me,
        mentor_id=top_mentor,
        past_booking_id=my_past.pk,
        upcoming_booking_id=my_upcoming.pk,
        live_booking_id=live.pk,
        group_id=groups[0].pk,
        receipt_reference=f"pay_{my_past.pk}",
    )


# --- The pages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    key: str
    label: str
    path: str
    expect: str  # text the response must contain: the page shows what it should
    # Load balancers' probes carry no cookies (and /healthz answers outside any institution).
    signed_in: bool = True


def pages_of(scene: Scene) -> list[Page]:
    return [
        Page(
            "baseline", "baseline: `/healthz` (anonymous, no institution)", "/healthz", "ok", signed_in=False
        ),
        Page(
            "baseline_user",
            "baseline: unread count (signed in, one query)",
            "/notifications/unread.json",
            "unread",
        ),
        Page("home", "home", "/", "Welcome"),
        Page("directory", "mentor directory", "/mentors/", 'data-testid="mentor-'),
        Page("directory_search", "mentor directory, search `python`", "/mentors/?q=python", "mentor-"),
        Page("mentor", "a mentor's profile (slot picker)", f"/mentors/{scene.mentor_id}/", "Book"),
        Page("my_sessions", "my sessions", "/sessions/", 'data-testid="booking-'),
        Page(
            "booking_past",
            "a past session (reviewed, paid)",
            f"/sessions/{scene.past_booking_id}/",
            "receipt",
        ),
        Page(
            "booking_upcoming",
            "an upcoming session (reschedule offered)",
            f"/sessions/{scene.upcoming_booking_id}/",
            "Reschedule",
        ),
        Page("groups", "group sessions", "/groups/", 'data-testid="group-'),
        Page("group", "a group session", f"/groups/{scene.group_id}/", "seats"),
        Page("live", "live room", f"/sessions/{scene.live_booking_id}/live/", "websocket_path"),
        Page(
            "receipt", "a receipt", f"/billing/receipts/{scene.receipt_reference}/", scene.receipt_reference
        ),
        Page("notifications", "notifications", "/notifications/", 'data-testid="notification-'),
        Page("account", "account (profile form)", "/accounts/profile/", "full_name"),
    ]


@dataclass(frozen=True)
class Summary:
    page: Page
    runs: int
    queries: int
    kib: float
    median: float
    p90: float
    minimum: float
    maximum: float
    cpu: float  # median CPU time of this process (Python's share, not Postgres' or Redis')


@dataclass(frozen=True)
class Clients:
    learner: Client
    anonymous: Client

    def for_page(self, page: Page) -> Client:
        return self.learner if page.signed_in else self.anonymous


def _clients(scene: Scene, host: str) -> Clients:
    # secure=True and the proxy's header: the same requests work under production settings too.
    learner = Client(HTTP_HOST=host, HTTP_X_FORWARDED_PROTO="https")
    learner.force_login(scene.learner)
    return Clients(learner=learner, anonymous=Client(HTTP_HOST=host, HTTP_X_FORWARDED_PROTO="https"))


def _get(clients: Clients, page: Page):
    response = clients.for_page(page).get(page.path, secure=True)
    if response.status_code != 200:
        raise RuntimeError(f"{page.path} answered {response.status_code}")
    return response


def check(clients: Clients, page: Page) -> tuple[int, float]:
    """(queries, KiB) of one request; fails when the page does not show what it should."""
    with CaptureQueriesContext(connection) as captured:
        response = _get(clients, page)
    body = response.content.decode()
    if page.expect not in body:
        raise RuntimeError(f"{page.path} does not contain {page.expect!r}:\n{body[:2000]}")
    return len(captured.captured_queries), len(response.content) / 1024


def measure(clients: Clients, pages: list[Page], runs: int, warmup: int) -> list[Summary]:
    for _ in range(warmup):
        for page in pages:
            _get(clients, page)
    checked = {page.key: check(clients, page) for page in pages}
    timings: dict[str, list[float]] = {page.key: [] for page in pages}
    cpu: dict[str, list[float]] = {page.key: [] for page in pages}
    for i in range(runs):
        # Rotate the order each round, so no page always runs right after the same other one.
        order = pages[i % len(pages) :] + pages[: i % len(pages)]
        for page in order:
            started, cpu_started = time.perf_counter(), time.process_time()
            _get(clients, page)
            timings[page.key].append((time.perf_counter() - started) * 1000)
            cpu[page.key].append((time.process_time() - cpu_started) * 1000)
    summaries = []
    for page in pages:
        values = timings[page.key]
        p90 = statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else values[0]
        queries, kib = checked[page.key]
        summaries.append(
            Summary(
                page,
                runs,
                queries,
                kib,
                statistics.median(values),
                p90,
                min(values),
                max(values),
                statistics.median(cpu[page.key]),
            )
        )
    return summaries


def profile(clients: Clients, page: Page, runs: int) -> None:
    from pyinstrument import Profiler

    for _ in range(3):
        _get(clients, page)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(runs):
        _get(clients, page)
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


# --- Reporting ----------------------------------------------------------------------------------


def table(summaries: list[Summary]) -> str:
    lines = [
        "| Page | Path | Queries | KiB | Median (ms) | p90 (ms) | Min (ms) | Max (ms) | CPU (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        path = s.page.path
        lines.append(
            f"| {s.page.label} | `{path}` | {s.queries} | {s.kib:.0f} | {s.median:.2f} | {s.p90:.2f} "
            f"| {s.minimum:.2f} | {s.maximum:.2f} | {s.cpu:.2f} |"
        )
    return "\n".join(lines)


def section(command: str, summaries: list[Summary], host: dict[str, str]) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    measured = [s for s in summaries if not s.page.key.startswith("baseline")]
    worst = max(measured, key=lambda s: s.median)
    verdict = "met" if worst.median <= GOAL_MS else "**not met**"
    return f"""## Learner pages: server time with {MENTORS} mentors and {BOOKINGS:,} bookings

```sh
{command}
```

- Date: {now}
- Machine: {host["nproc"]} CPUs (`nproc`), {host["cpu"]}; PostgreSQL {host["postgres"]} and Redis on
  the same machine; 1-minute load average {host["load"]} at the start and end of the timing (above
  the number of CPUs, other work shared the machine: wall times then run well above the CPU times)

{table(summaries)}

Goal: median ≤ {GOAL_MS:.0f} ms per page — {verdict} (slowest: {worst.page.label}, {worst.median:.2f} ms).

- A throw-away institution (`tenants.services.institution_provision`) gets, from a seeded random
  generator (seed {SEED}): {MENTORS} approved mentors (2–8 expertise tags, 1–3 languages, prices
  GBP 0–75.00, Monday–Friday 09:00–17:00), {LEARNERS} learners, {BOOKINGS:,} bookings over the last year
  and the next 8 weeks (past ones mostly completed, some cancelled or no-shows, upcoming ones mostly
  confirmed), a transition history for each, reviews of 60 % of completed sessions, payments for
  paid sessions (refunds for cancelled ones), two notifications per booking for each participant,
  {GROUP_SESSIONS} upcoming group sessions with seats taken.
- The benchmark learner has {MY_PAST} past and {MY_UPCOMING} upcoming sessions, one live now, seats
  in {GROUP_SESSIONS // 10} group sessions, ~{2 * (MY_PAST + MY_UPCOMING)} notifications and their payments.
- Each page is `GET` through Django's test `Client` (the whole middleware stack, the institution's
  Host, signed in as that learner, `DEBUG` off), {summaries[0].runs} times after 3 unrecorded rounds,
  the pages rotating within each round. "Queries" and "KiB" are of one request after the warm-up;
  "CPU" is the median CPU time of the Django process per request (Postgres' and Redis' work is not
  in it). The baselines: `/healthz` (no institution, no session) and `/notifications/unread.json`
  (institution, session, user and one query), what any request costs before a page does its work.
- The mentor's profile is the booking page: learners pick a slot there (the slots come from the
  API, timed by `bench/slots.py`) and the booking is a `POST` from it.
- The institution, its domain and schema are dropped at the end (also on error or Ctrl-C)."""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=60, help="timed requests per page (default 60)")
    parser.add_argument("--quick", action="store_true", help="15 runs per page (for make bench-quick)")
    parser.add_argument(
        "--profile",
        metavar="PAGE[,PAGE…]",
        help="print a pyinstrument profile of these pages instead (no doc)",
    )
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    args = parser.parse_args()
    runs = 15 if args.quick else args.runs
    if runs < 1:
        parser.error("--runs must be at least 1")

    settings_module = os.environ["DJANGO_SETTINGS_MODULE"]
    command = (
        f"DJANGO_SETTINGS_MODULE={settings_module} DATABASE_URL=… REDIS_URL=… .venv/bin/python bench/pages.py"
    )
    if args.quick:
        command += " --quick"
    elif runs != 60:
        command += f" --runs {runs}"
    subdomain = f"bench-pages-{secrets.token_hex(3)}"
    rng = random.Random(SEED)
    summaries: list[Summary] = []
    try:
        # The new admin's confirmation email goes nowhere instead of to the console.
        with (
            sigterm_as_interrupt(),
            override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"),
        ):
            print(f"Provisioning {subdomain} …")
            institution = institution_provision(
                signup=InstitutionSignup(
                    name="Bench pages",
                    subdomain=subdomain,
                    country="GB",
                    currency=CURRENCY,
                    timezone="Europe/London",
                    admin_full_name="Bench Admin",
                    admin_email=f"admin@{subdomain}.example",
                    admin_password=secrets.token_urlsafe(16),
                )
            ).institution
            with tenant_context(institution):
                print(f"Seeding {MENTORS} mentors, {LEARNERS} learners and {BOOKINGS:,} bookings …")
                started = time.perf_counter()
                scene = seed(rng)
                print(f"Seeded in {time.perf_counter() - started:.1f} s.")
                host = machine()
                clients = _clients(scene, f"{institution.slug}.{settings.PLATFORM_DOMAIN}")
            connection.set_schema_to_public()
            pages = pages_of(scene)
            if args.profile:
                known = {page.key: page for page in pages}
                wanted = args.profile.split(",")
                unknown = [key for key in wanted if key not in known]
                if unknown:
                    parser.error(f"--profile: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
                for key in wanted:
                    print(f"\n=== {key}: {known[key].path}")
                    profile(clients, known[key], runs)
                return 0
            print(f"Timing {len(pages)} pages, {runs} runs each …")
            load_before = os.getloadavg()[0]
            summaries = measure(clients, pages, runs, warmup=3)
            host["load"] = f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"
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
        write_section("pages", section(command, summaries, host))
        print(f"Wrote the results to {DOC.relative_to(REPO_ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
