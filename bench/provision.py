"""Provisioning benchmark: cloning the template schema against running every migration, interleaved."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402
from django_tenants.utils import quote_schema_name  # noqa: E402

from bench.common import DOC, drop_institution, machine, sigterm_as_interrupt, write_section  # noqa: E402
from tenants import services  # noqa: E402
from tenants.services import STEPS, InstitutionSignup, Provisioning, Step  # noqa: E402

CLONE = "Template clone"
PLAIN = "Plain migrations"
# The password the admins get; its hash is computed once, before any timing.
BENCH_PASSWORD = "bench-provisioning-password"


# --- The two paths ------------------------------------------------------------------------------


def _migrate_schema(p: Provisioning) -> None:
    """Create the schema empty and run every tenant migration into it (django-tenants' own way)."""
    p.institution.create_schema(check_if_exists=True, sync_schema=True, verbosity=0)


# The service's steps with the clone swapped for migrations: everything else is identical.
PLAIN_STEPS: tuple[Step, ...] = tuple(
    Step(step.label, _migrate_schema) if step.run is services._create_schema else step for step in STEPS
)
assert PLAIN_STEPS != STEPS, "tenants.services.STEPS no longer has the _create_schema step"


def provision_by_clone(signup: InstitutionSignup) -> Provisioning:
    return services.institution_provision(signup=signup)


def provision_by_migrations(signup: InstitutionSignup) -> Provisioning:
    # Without TENANT_CREATION_FAKES_MIGRATIONS, create_schema() ignores the base schema
    # (get_base_schema() is only consulted when it is on) and runs `migrate_schemas` instead.
    with (
        override_settings(TENANT_CREATION_FAKES_MIGRATIONS=False, TENANT_BASE_SCHEMA=None),
        mock.patch.object(services, "STEPS", PLAIN_STEPS),
    ):
        return services.institution_provision(signup=signup)


PATHS: dict[str, Callable[[InstitutionSignup], Provisioning]] = {
    CLONE: provision_by_clone,
    PLAIN: provision_by_migrations,
}


# --- Bookkeeping and clean-up -------------------------------------------------------------------


@dataclass
class Run:
    token: str = field(default_factory=lambda: secrets.token_hex(3))
    subdomains: list[str] = field(default_factory=list)
    timings: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in PATHS})

    def signup(self, path: str, label: str) -> InstitutionSignup:
        kind = "clone" if path == CLONE else "plain"
        subdomain = f"bench-{kind}-{label}-{self.token}"
        self.subdomains.append(subdomain)
        return InstitutionSignup(
            name=f"Bench {kind} {label}",
            subdomain=subdomain,
            country="GB",
            currency="GBP",
            timezone="Europe/London",
            admin_full_name="Bench Admin",
            admin_email=f"admin@{subdomain}.example",
            admin_password=BENCH_PASSWORD,
        )


def drop_everything(run: Run) -> int:
    """Drop every institution, domain and schema this run made (also after a failure)."""
    return sum(drop_institution(subdomain) for subdomain in run.subdomains)


@contextmanager
def prehashed_password() -> Iterator[None]:
    """The admin's password hash is computed once here, so no timing includes the (slow) hashing."""
    password_hash = make_password(BENCH_PASSWORD)
    with mock.patch.object(services, "make_password", lambda password: password_hash):
        yield


# --- Measuring ----------------------------------------------------------------------------------


def measure(run: Run, runs: int) -> None:
    # One unrecorded provisioning per path first: imports, the migration graph, validators.
    for path, provision in PATHS.items():
        provision(run.signup(path, "warm"))
    for i in range(runs):
        # Alternate which path goes first, so neither always runs on a warmer cache.
        order = list(PATHS) if i % 2 == 0 else list(reversed(PATHS))
        for path in order:
            signup = run.signup(path, str(i))
            started = time.perf_counter()
            PATHS[path](signup)
            run.timings[path].append((time.perf_counter() - started) * 1000)
        print(f"  run {i + 1}/{runs}: " + ", ".join(f"{p} {run.timings[p][-1]:.0f} ms" for p in PATHS))


@dataclass(frozen=True)
class Summary:
    path: str
    runs: int
    median: float
    minimum: float
    p90: float
    maximum: float


def summarize(path: str, timings: list[float]) -> Summary:
    p90 = statistics.quantiles(timings, n=10, method="inclusive")[8] if len(timings) > 1 else timings[0]
    return Summary(path, len(timings), statistics.median(timings), min(timings), p90, max(timings))


# --- Reporting ----------------------------------------------------------------------------------


def template_size() -> tuple[int, int]:
    """Tables in the template schema, and the migrations recorded in it."""
    template = settings.TENANT_BASE_SCHEMA
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            [template],
        )
        tables = cursor.fetchone()[0]
        cursor.execute(f"SELECT count(*) FROM {quote_schema_name(template)}.django_migrations")
        migrations = cursor.fetchone()[0]
    return tables, migrations


def table(summaries: list[Summary]) -> str:
    lines = [
        "| Path | Runs | Median (ms) | Min (ms) | p90 (ms) | Max (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.path} | {s.runs} | {s.median:.1f} | {s.minimum:.1f} | {s.p90:.1f} | {s.maximum:.1f} |"
        )
    return "\n".join(lines)


def section(command: str, summaries: list[Summary], ratio: float, host: dict[str, str]) -> str:
    tables, migrations = template_size()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""## Provisioning an institution: template clone vs. plain migrations

```sh
{command}
```

- Date: {now}
- Machine: {host["nproc"]} CPUs (`nproc`), {host["cpu"]}; PostgreSQL {host["postgres"]} on the same machine
- Template schema `{settings.TENANT_BASE_SCHEMA}`: {tables} tenant tables, {migrations} recorded migrations

{table(summaries)}

Plain migrations take **{ratio:.1f}×** as long as the template clone (ratio of the medians).

- **{CLONE}**: `tenants.services.institution_provision()` exactly as sign-up runs it: one transaction
  that checks the details, saves the institution, clones `{settings.TENANT_BASE_SCHEMA}` with
  django-tenants' `CloneSchema`, adds the domain, the first admin and the sign-in link.
- **{PLAIN}**: the same service and steps, with the clone replaced by django-tenants'
  `Institution.create_schema(sync_schema=True)` with `TENANT_CREATION_FAKES_MIGRATIONS=False`
  (an empty schema, then `migrate_schemas` for it: every migration, content types, permissions).
- The two paths alternate within each run (which one goes first alternates too), after one
  unrecorded warm-up provisioning each. Password hashing is excluded from both: the admin's hash is
  computed once beforehand and `tenants.services.make_password` returns it. p90 is interpolated
  (`statistics.quantiles`, inclusive). Every institution, domain and schema made is dropped at the end."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="measured provisionings per path (default 10)")
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    settings_module = os.environ["DJANGO_SETTINGS_MODULE"]
    command = f"DJANGO_SETTINGS_MODULE={settings_module} python bench/provision.py --runs {args.runs}"
    print("Applying migrations (migrate_schemas) …")
    call_command("migrate_schemas", "--noinput", verbosity=0)
    connection.set_schema_to_public()

    run = Run()
    print(f"Provisioning {args.runs} institutions per path (+1 warm-up each), interleaved:")
    try:
        with sigterm_as_interrupt(), prehashed_password():
            measure(run, args.runs)
    except KeyboardInterrupt:
        print("\nInterrupted: cleaning up.", file=sys.stderr)
        return 130
    finally:
        # A second SIGTERM must not cut the clean-up short (Ctrl-C still can).
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            dropped = drop_everything(run)
        finally:
            signal.signal(signal.SIGTERM, previous)
        print(f"Dropped {dropped} institutions (their domains and schemas) made by this run.")

    summaries = [summarize(path, timings) for path, timings in run.timings.items()]
    ratio = summaries[1].median / summaries[0].median
    print()
    print(table(summaries))
    print(f"\n{PLAIN} / {CLONE} (medians): {ratio:.1f}×")
    if not args.no_doc:
        write_section("provision", section(command, summaries, ratio, machine()))
        print(f"Wrote the results to {DOC.relative_to(REPO_ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
