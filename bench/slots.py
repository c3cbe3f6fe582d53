"""Slot generation benchmark: one mentor's full 8-week horizon, with 200 bookings and with none."""

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

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from bench.common import DOC, drop_institution, machine, sigterm_as_interrupt, write_section  # noqa: E402
from tenant_apps.accounts.models import User  # noqa: E402
from tenant_apps.sessions.models import Booking, MentorProfile, WeeklyAvailability  # noqa: E402
from tenant_apps.sessions.slots import mentor_slots  # noqa: E402
from tenants.services import InstitutionSignup, institution_provision  # noqa: E402

MENTOR_TIMEZONE = "Europe/London"
HORIZON_DAYS = 56
BOOKINGS = 200
MINUTES = 30
WARM_UP = 5
WITH_BOOKINGS = f"{BOOKINGS} confirmed bookings"
WITHOUT_BOOKINGS = "No bookings (baseline)"


# --- The scene ---------------------------------------------------------------------------------------


def make_mentor(email: str) -> MentorProfile:
    user = User.objects.create_user(
        email,
        password=None,
        full_name="Bench Mentor",
        role=User.Role.MENTOR,
        mentor_status=User.MentorStatus.APPROVED,
        timezone=MENTOR_TIMEZONE,
    )
    mentor = MentorProfile.objects.create(
        user=user,
        session_lengths=[MINUTES],
        minimum_notice_minutes=0,
        booking_horizon_days=HORIZON_DAYS,
        max_sessions_per_day=48,
    )
    WeeklyAvailability.objects.bulk_create(
        WeeklyAvailability(mentor=mentor, weekday=day, start_time=dt.time(8), end_time=dt.time(20))
        for day in range(5)
    )
    return MentorProfile.objects.select_related("user").get(pk=mentor.pk)


def book(mentor: MentorProfile, learner: User, now: dt.datetime, count: int) -> int:
    """`count` confirmed 30-minute bookings on distinct free slots spread over the horizon."""
    free = mentor_slots(mentor=mentor, minutes=MINUTES, now=now)
    chosen = sorted(random.Random(2027).sample(free, count), key=lambda slot: slot.starts_at)
    Booking.objects.bulk_create(
        Booking(
            mentor=mentor,
            learner=learner,
            starts_at=slot.starts_at,
            ends_at=slot.ends_at,
            blocked=DateTimeTZRange(slot.starts_at, slot.ends_at),
            status=Booking.Status.CONFIRMED,
            currency="GBP",
        )
        for slot in chosen
    )
    return len(free)


# --- Measuring ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    case: str
    runs: int
    slots: int
    queries: int
    median: float
    p90: float
    minimum: float
    maximum: float


def summarize(case: str, timings: list[float], slots: int, queries: int) -> Summary:
    p90 = statistics.quantiles(timings, n=10, method="inclusive")[8]
    return Summary(
        case, len(timings), slots, queries, statistics.median(timings), p90, min(timings), max(timings)
    )


def measure(cases: dict[str, Callable[[], list]], runs: int) -> list[Summary]:
    for _ in range(WARM_UP):
        for generate in cases.values():
            generate()
    timings: dict[str, list[float]] = {case: [] for case in cases}
    for i in range(runs):
        # Alternate which case goes first, so neither always runs on a warmer cache.
        for case in list(cases) if i % 2 == 0 else list(reversed(cases)):
            started = time.perf_counter()
            cases[case]()
            timings[case].append((time.perf_counter() - started) * 1000)
    summaries = []
    for case, generate in cases.items():
        with CaptureQueriesContext(connection) as queries:
            slots = generate()
        summaries.append(summarize(case, timings[case], len(slots), len(queries.captured_queries)))
    return summaries


# --- Clean-up ----------------------------------------------------------------------------------------


# --- Reporting ---------------------------------------------------------------------------------------


def table(summaries: list[Summary]) -> str:
    lines = [
        "| Case | Runs | Slots returned | Queries | Median (ms) | p90 (ms) | Min (ms) | Max (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.case} | {s.runs} | {s.slots} | {s.queries} | {s.median:.2f} | {s.p90:.2f} "
            f"| {s.minimum:.2f} | {s.maximum:.2f} |"
        )
    return "\n".join(lines)


def section(command: str, summaries: list[Summary], candidates: int, host: dict[str, str]) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "met" if max(s.median for s in summaries) <= 10 else "**not met**"
    return f"""## Slot generation: one mentor, the full 8-week horizon

```sh
{command}
```

- Date: {now}
- Machine: {host["nproc"]} CPUs (`nproc`), {host["cpu"]}; PostgreSQL {host["postgres"]} on the same machine

{table(summaries)}

Goal: median ≤ 10 ms with {BOOKINGS} bookings — {verdict}.

- One mentor in `{MENTOR_TIMEZONE}`, Monday–Friday 08:00–20:00, {MINUTES}-minute sessions, no buffers, no
  notice, a {HORIZON_DAYS}-day horizon: {candidates} possible starts. The first case has {BOOKINGS} confirmed
  bookings on randomly chosen (seeded) starts across the horizon; the baseline is a second mentor with the
  same hours and none. Both live in a throw-away institution made with
  `tenants.services.institution_provision()` and dropped at the end.
- Each measurement is one `tenant_apps.sessions.slots.mentor_slots(mentor=…, minutes={MINUTES}, now=…)` call
  over the whole horizon: its queries (weekly hours, overrides, bookings, group sessions) and the Python that
  turns them into slots. The profile and its user are loaded once beforehand, as a view would.
- {WARM_UP} unrecorded calls per case first; the two cases then alternate (which goes first alternates too).
  p90 is interpolated (`statistics.quantiles`, inclusive)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50, help="measured calls per case (default 50)")
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    parser.add_argument("--no-migrate", action="store_true", help="skip migrate_schemas before starting")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2")

    settings_module = os.environ["DJANGO_SETTINGS_MODULE"]
    command = f"DJANGO_SETTINGS_MODULE={settings_module} python bench/slots.py --runs {args.runs}"
    if not args.no_migrate:
        print("Applying migrations (migrate_schemas) …")
        call_command("migrate_schemas", "--noinput", verbosity=0)
    connection.set_schema_to_public()

    subdomain = f"bench-slots-{secrets.token_hex(3)}"
    signup = InstitutionSignup(
        name="Bench slots",
        subdomain=subdomain,
        country="GB",
        currency="GBP",
        timezone=MENTOR_TIMEZONE,
        admin_full_name="Bench Admin",
        admin_email=f"admin@{subdomain}.example",
        admin_password=secrets.token_urlsafe(16),
    )
    try:
        with sigterm_as_interrupt():
            print(f"Provisioning {subdomain} …")
            institution = institution_provision(signup=signup).institution
            with tenant_context(institution):
                now = dt.datetime.now(dt.UTC)
                busy = make_mentor("busy@bench.example")
                idle = make_mentor("idle@bench.example")
                learner = User.objects.create_user(
                    "learner@bench.example", password=None, full_name="Bench Learner"
                )
                candidates = book(busy, learner, now, BOOKINGS)
                print(f"Timing mentor_slots() over {HORIZON_DAYS} days, {args.runs} runs per case …")
                summaries = measure(
                    {
                        WITH_BOOKINGS: lambda: mentor_slots(mentor=busy, minutes=MINUTES, now=now),
                        WITHOUT_BOOKINGS: lambda: mentor_slots(mentor=idle, minutes=MINUTES, now=now),
                    },
                    args.runs,
                )
                host = machine()
    except KeyboardInterrupt:
        print("\nInterrupted: cleaning up.", file=sys.stderr)
        return 130
    finally:
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            dropped = drop_institution(subdomain)
        finally:
            signal.signal(signal.SIGTERM, previous)
        print(f"Dropped {dropped} institution (its domain and schema) made by this run.")

    print()
    print(table(summaries))
    if not args.no_doc:
        write_section("slots", section(command, summaries, candidates, host))
        print(f"Wrote the results to {DOC.relative_to(REPO_ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
