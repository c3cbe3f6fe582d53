"""Mentor directory benchmark: full-text search and filters over 2,000 mentors in a throwaway institution."""

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
from decimal import Decimal
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402

django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from bench.common import DOC, drop_institution, machine, sigterm_as_interrupt, write_section  # noqa: E402
from tenant_apps.accounts.models import User  # noqa: E402
from tenant_apps.sessions.directory import mentor_directory  # noqa: E402
from tenant_apps.sessions.models import MentorProfile  # noqa: E402
from tenant_apps.sessions.search import mentor_search_refresh  # noqa: E402
from tenants.services import InstitutionSignup, institution_provision  # noqa: E402

SEED = 20261125
GOAL_MS = 30.0

# --- The data -----------------------------------------------------------------------------------

FIRST_NAMES = (  # noqa: SIM905 - a word list reads best as words
    "Aarav Aisha Alejandro Amara Ana Andrei Anika Ben Carlos Chen Chidi Chloe Daniel Dmitri Elena "
    "Emeka Emma Fatima Felix Grace Hana Hiroshi Ibrahim Ines Isabel Jamal Jin Jonas Kavya Kofi Lars "
    "Layla Leila Liam Lucia Maya Mateo Mei Mohammed Nadia Nikhil Noah Olga Omar Priya Rahul Ravi Rosa "
    "Sara Sofia Tariq Tomas Uma Victor Wei Yara Yusuf Zara Zhang"
).split()
LAST_NAMES = (  # noqa: SIM905 - a word list reads best as words
    "Abara Ahmed Andersen Bauer Brown Castillo Chen Costa Dubois Eriksen Fernandes Garcia Gupta "
    "Haddad Hansen Ito Ivanova Johnson Kapoor Kim Kowalski Kumar Larsen Lee Lopez Martin Meyer Mensah "
    "Moreau Nakamura Nguyen Novak Okafor Olsen Patel Pereira Petrov Reddy Rossi Santos Sato Schmidt "
    "Silva Singh Smith Suzuki Tanaka Torres Wagner Wang Weber Williams Yamamoto Zhou"
).split()
ROLES = (
    "Software engineer",
    "Senior data scientist",
    "Product manager",
    "UX designer",
    "Engineering manager",
    "Machine learning engineer",
    "Site reliability engineer",
    "Frontend developer",
    "Backend developer",
    "Security analyst",
    "Career coach",
    "Startup founder",
    "Marketing lead",
    "Finance analyst",
    "Research scientist",
    "Technical writer",
)
COMPANIES = (
    "a fintech startup",
    "a global bank",
    "a cloud provider",
    "a health-tech company",
    "an online retailer",
    "a games studio",
    "a university lab",
    "a consultancy",
    "a climate-tech startup",
    "a media company",
)
TAGS = (  # noqa: SIM905 - a word list reads best as words
    "python javascript typescript react vue django flask rust go java kotlin swift sql postgres "
    "kubernetes docker aws azure gcp terraform devops security machine-learning deep-learning nlp "
    "data-science statistics analytics product-management ux-design figma career-change interviews "
    "leadership management public-speaking writing marketing seo finance startups fundraising "
    "system-design architecture testing accessibility mobile android ios blockchain excel tableau "
    "spark airflow negotiation resume-review"
).split()
LANGUAGES = (
    "English",
    "Spanish",
    "French",
    "German",
    "Hindi",
    "Portuguese",
    "Mandarin",
    "Arabic",
    "Japanese",
)
LANGUAGE_WEIGHTS = (60, 12, 8, 6, 8, 5, 5, 4, 3)
SENTENCES = (
    "I have spent {years} years working on {tag} and {tag2} in teams large and small.",
    "I help people move into {tag} from other careers, step by step.",
    "My sessions are practical: we look at your {tag} work together and plan what to learn next.",
    "Before that I worked with {tag2} at {company}.",
    "I enjoy mock interviews, code reviews and talking about {tag}.",
    "Outside work I mentor students and write about {tag2}.",
    "Ask me about growing from junior to senior, and about {tag}.",
    "I care about clear explanations and honest feedback.",
)
TIMEZONES = ("Europe/London", "America/New_York", "Asia/Kolkata", "Europe/Berlin", "Asia/Tokyo", "UTC")
PRICES = (0, 0, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 7500, 10000)

# Each shape is timed as `list(mentor_directory(**kwargs)[:20])`.
SHAPES: tuple[tuple[str, dict], ...] = (
    ("single word: `python`", {"query": "python"}),
    ("two words: `data science`", {"query": "data science"}),
    ("prefix: `kube`", {"query": "kube"}),
    ("name: `garcia`", {"query": "garcia"}),
    ('websearch: `"machine learning" -java`', {"query": '"machine learning" -java'}),
    (
        "word + filters: `python`, English, ≤ 30.00, rating ≥ 4",
        {
            "query": "python",
            "language": "english",
            "price_max": 3000,
            "min_rating": 4.0,
        },
    ),
    ("filter only: expertise `react`, by price", {"expertise": "react", "sort": "price_low"}),
    ("free within 7 days, soonest first", {"free_within_days": 7, "sort": "soonest"}),
    ("no query, by rating", {"sort": "rating"}),
)


def bulk_create_mentors(count: int, rng: random.Random) -> None:
    """`count` approved mentors with varied names, headlines, tags, bios, prices and ratings."""
    password = make_password(None)  # unusable: nobody signs in as these
    now = timezone.now()
    users = [
        User(
            email=f"mentor{i}@bench.example",
            full_name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            role=User.Role.MENTOR,
            mentor_status=User.MentorStatus.APPROVED,
            timezone=rng.choice(TIMEZONES),
            password=password,
        )
        for i in range(count)
    ]
    User.objects.bulk_create(users, batch_size=500)
    profiles = []
    for user in users:
        tags = rng.sample(TAGS, rng.randint(2, 8))
        years = rng.randint(1, 35)
        bio = " ".join(
            sentence.format(years=years, tag=tags[0], tag2=tags[-1], company=rng.choice(COMPANIES))
            for sentence in rng.sample(SENTENCES, rng.randint(2, 5))
        )
        rated = rng.random() < 0.8
        free = rng.random() < 0.85
        profiles.append(
            MentorProfile(
                user=user,
                headline=f"{rng.choice(ROLES)} at {rng.choice(COMPANIES)}",
                bio=bio,
                expertise=tags,
                languages=sorted(set(rng.choices(LANGUAGES, weights=LANGUAGE_WEIGHTS, k=rng.randint(1, 3)))),
                years_experience=years,
                session_lengths=sorted(rng.sample([15, 30, 45, 60, 90], rng.randint(1, 3))),
                price_minor=rng.choice(PRICES),
                rating_average=Decimal(f"{rng.uniform(3.0, 5.0):.2f}") if rated else None,
                rating_count=rng.randint(1, 200) if rated else 0,
                # Fresh stored values, as the on-change refreshes keep them: no slot computing is timed.
                next_free_slot_at=now + dt.timedelta(hours=rng.uniform(1, 24 * 30)) if free else None,
                next_free_slot_checked_at=now,
            )
        )
    MentorProfile.objects.bulk_create(profiles, batch_size=500)


# --- Measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    shape: str
    matches: int
    runs: int
    median: float
    p90: float
    minimum: float
    maximum: float
    uses_search_index: bool


def summarize(shape: str, matches: int, timings: list[float], uses_index: bool) -> Summary:
    p90 = statistics.quantiles(timings, n=10, method="inclusive")[8] if len(timings) > 1 else timings[0]
    return Summary(
        shape, matches, len(timings), statistics.median(timings), p90, min(timings), max(timings), uses_index
    )


def plan_of(kwargs: dict) -> str:
    sql, params = mentor_directory(**kwargs)[:20].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def measure(runs: int, warmup: int) -> list[Summary]:
    timings: dict[str, list[float]] = {name: [] for name, _ in SHAPES}
    for _ in range(warmup):
        for _, kwargs in SHAPES:
            list(mentor_directory(**kwargs)[:20])
    for i in range(runs):
        # Rotate the order each round, so no shape always runs right after the same other one.
        order = SHAPES[i % len(SHAPES) :] + SHAPES[: i % len(SHAPES)]
        for name, kwargs in order:
            started = time.perf_counter()
            list(mentor_directory(**kwargs)[:20])
            timings[name].append((time.perf_counter() - started) * 1000)
    summaries = []
    for name, kwargs in SHAPES:
        matches = mentor_directory(**kwargs).count()
        uses_index = "mentor_search_idx" in plan_of(kwargs)
        summaries.append(summarize(name, matches, timings[name], uses_index))
    return summaries


# --- Bookkeeping and clean-up -------------------------------------------------------------------


# --- Reporting ----------------------------------------------------------------------------------


def table(summaries: list[Summary]) -> str:
    lines = [
        "| Query shape | Matches | Runs | Median (ms) | p90 (ms) | Min (ms) | Max (ms) | GIN search index |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in summaries:
        index = "yes" if s.uses_search_index else "—"
        lines.append(
            f"| {s.shape} | {s.matches} | {s.runs} | {s.median:.2f} | {s.p90:.2f} | {s.minimum:.2f} "
            f"| {s.maximum:.2f} | {index} |"
        )
    return "\n".join(lines)


def section(command: str, summaries: list[Summary], mentors: int, host: dict[str, str]) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    worst = max(s.median for s in summaries)
    verdict = "met" if worst <= GOAL_MS else "**not met**"
    return f"""## Mentor directory: search and filters over {mentors:,} mentors

```sh
{command}
```

- Date: {now}
- Machine: {host["nproc"]} CPUs (`nproc`), {host["cpu"]}; PostgreSQL {host["postgres"]} on the same machine

{table(summaries)}

Goal: median ≤ {GOAL_MS:.0f} ms per query shape — {verdict} (slowest median {worst:.2f} ms).

- A throwaway institution (`tenants.services.institution_provision`) gets {mentors:,} approved mentors
  from a seeded random generator (seed {SEED}): names from {len(FIRST_NAMES)} × {len(LAST_NAMES)}
  first and last names, headlines "<role> at <company>", 2–8 of {len(TAGS)} expertise tags,
  1–3 languages (English most common), 2–5 bio sentences naming their tags, prices GBP 0–100.00,
  80 % rated. `mentor_search_refresh()` builds every search document in one `UPDATE`, then `ANALYZE`.
- Each shape is timed as `list(mentor_directory(**filters)[:20])` (the rows of one page, user
  joined), {summaries[0].runs} times after 5 unrecorded rounds, the shapes rotating within each round.
  "Matches" is the full count. "GIN search index" says whether Postgres' plan uses
  `mentor_search_idx`; with a few thousand rows Postgres may rather scan the table and test `@@`
  on each row, which costs about as much.
- The stored next free slots are fresh (checked just now), as the on-change refreshes keep them,
  so the "free within" shape times the filter, not slot computing.
- The institution, its domain and schema are dropped at the end (also on error or Ctrl-C)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mentors", type=int, default=2000, help="mentors to create (default 2000)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per query shape (default 50)")
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    args = parser.parse_args()
    if args.runs < 1 or args.mentors < 1:
        parser.error("--runs and --mentors must be at least 1")

    settings_module = os.environ["DJANGO_SETTINGS_MODULE"]
    command = f"DJANGO_SETTINGS_MODULE={settings_module} DATABASE_URL=… .venv/bin/python bench/directory.py"
    if args.mentors != 2000 or args.runs != 50:
        command += f" --mentors {args.mentors} --runs {args.runs}"
    subdomain = f"bench-dir-{secrets.token_hex(3)}"
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
                    name="Bench directory",
                    subdomain=subdomain,
                    country="GB",
                    currency="GBP",
                    timezone="Europe/London",
                    admin_full_name="Bench Admin",
                    admin_email=f"admin@{subdomain}.example",
                    admin_password=secrets.token_urlsafe(16),
                )
            ).institution
            with tenant_context(institution):
                print(f"Creating {args.mentors} mentors …")
                bulk_create_mentors(args.mentors, rng)
                mentor_search_refresh()
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE mentoring_mentorprofile")
                    cursor.execute("ANALYZE accounts_user")
                print(f"Timing {len(SHAPES)} query shapes, {args.runs} runs each …")
                summaries = measure(args.runs, warmup=5)
                host = machine()
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
        write_section("directory", section(command, summaries, args.mentors, host))
        print(f"Wrote the results to {DOC.relative_to(REPO_ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
