"""Reminder scheduler benchmark: one tick with 100 due reminders, among the upcoming reminders of
50 bookings per institution, for 10 and for 1,000 institutions.

The tick reads only the public schedule (shared/reminders: one row per booking and kind, indexed on
the time it is due) and enqueues one task per due reminder; it never opens an institution's schema.
So the scene is the schedule itself: for each institution, its bookings' upcoming reminders (three
per booking: a day before, an hour before, starting) plus its share of the 100 that are due. The
tasks go to a throw-away Redis database, not the one a running worker listens to.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
# The tick's tasks must reach no worker: a broker database of their own, emptied afterwards.
_redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
os.environ["CELERY_BROKER_URL"] = f"{_redis}/14"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.common import DOC, machine, sigterm_as_interrupt, write_section  # noqa: E402
from config.celery import app  # noqa: E402
from shared.reminders.models import DueReminder  # noqa: E402
from shared.reminders.services import reminders_tick  # noqa: E402

BOOKINGS_PER_INSTITUTION = 50
DUE = 100
PREFIX = "bench_rem_"
GOAL_RATIO = 1.2


def build(institutions: int) -> list[int]:
    """The schedule of `institutions` institutions; returns the ids of the due rows."""
    now = timezone.now()
    rows = []
    for i in range(institutions):
        schema = f"{PREFIX}{i:05d}"
        for b in range(BOOKINGS_PER_INSTITUTION):
            starts = now + timedelta(days=2 + (b % 20), hours=i % 24)
            for kind, offset in (("reminder_24h", 24), ("reminder_1h", 1), ("session_starting", 0)):
                rows.append(
                    DueReminder(
                        schema_name=schema,
                        object_id=b + 1,
                        kind=kind,
                        due_at=starts - timedelta(hours=offset),
                        starts_at=starts,
                    )
                )
    for d in range(DUE):
        schema = f"{PREFIX}{d % institutions:05d}"
        rows.append(
            DueReminder(
                schema_name=schema,
                subject="group",
                object_id=d + 1,
                kind="reminder_1h",
                due_at=now - timedelta(seconds=30 + d),
                starts_at=now + timedelta(minutes=30),
            )
        )
    DueReminder.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reminders_duereminder")
    return list(
        DueReminder.objects.filter(schema_name__startswith=PREFIX, due_at__lte=now).values_list(
            "pk", flat=True
        )
    )


def clear() -> None:
    DueReminder.objects.filter(schema_name__startswith=PREFIX).delete()
    app.control.purge()


def measure(due_ids: list[int], runs: int) -> tuple[list[float], int]:
    times, queries = [], 0
    for _ in range(runs):
        DueReminder.objects.filter(pk__in=due_ids).update(claimed_at=None)
        app.control.purge()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            claimed = reminders_tick()
            times.append((time.perf_counter() - started) * 1000)
        if claimed != DUE:
            raise RuntimeError(f"the tick claimed {claimed} reminders, not {DUE}")
        queries = len(captured.captured_queries)
    return times, queries


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "p90": ordered[int(0.9 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    results = {}
    with sigterm_as_interrupt():
        try:
            clear()
            for institutions in (10, 1000):
                due_ids = build(institutions)
                measure(due_ids, 3)  # warm-up
                times, queries = measure(due_ids, args.runs)
                rows = DueReminder.objects.filter(schema_name__startswith=PREFIX).count()
                results[institutions] = (stats(times), queries, rows)
                print(
                    f"{institutions:>5} institutions, {rows:,} scheduled reminders: "
                    f"median {results[institutions][0]['median']:.2f} ms, {queries} queries",
                    flush=True,
                )
                clear()
        finally:
            clear()
    ratio = results[1000][0]["median"] / results[10][0]["median"]
    print(f"ratio 1,000 / 10 institutions: {ratio:.2f} (goal ≤ {GOAL_RATIO})")
    if not args.no_doc:
        host = machine()
        lines = [
            "## Reminder scheduler tick",
            "",
            "```",
            "DJANGO_SETTINGS_MODULE=config.settings.dev DATABASE_URL=… REDIS_URL=… "
            ".venv/bin/python bench/reminders_tick.py",
            "```",
            "",
            f"- Date: {timezone.now():%Y-%m-%d %H:%M} UTC; {host['nproc']} CPUs, {host['cpu']}; "
            f"PostgreSQL {host['postgres']}",
            f"- One tick = claim the {DUE} due reminders (`FOR UPDATE SKIP LOCKED`) and enqueue "
            "one task each "
            f"in its institution's schema; {BOOKINGS_PER_INSTITUTION} upcoming bookings per institution, "
            f"three reminders each; {args.runs} ticks per size.",
            "",
            "| Institutions | Scheduled reminders | Median (ms) | Min | p90 | Max | Queries per tick |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for institutions, (s, queries, rows) in results.items():
            figures = " | ".join(f"{s[key]:.2f}" for key in ("median", "min", "p90", "max"))
            lines.append(f"| {institutions:,} | {rows:,} | {figures} | {queries} |")
        verdict = "met" if ratio <= GOAL_RATIO else "**not met**"
        lines += ["", f"Goal — time at 1,000 institutions ≤ 1.2 × at 10: {verdict} (ratio {ratio:.2f})."]
        write_section("reminders_tick", "\n".join(lines))
        print(f"Wrote the results to {DOC.relative_to(REPO_ROOT)}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
