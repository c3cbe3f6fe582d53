"""Go-live time: a sign-up served from the schema pool, against cloning the template, against running
every migration, against the floor (a raw rename and two inserts), interleaved."""

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
from django.db import connection, transaction  # noqa: E402
from django.db.models import Model  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.clone import CloneSchema  # noqa: E402
from django_tenants.utils import quote_schema_name, schema_exists  # noqa: E402

from bench.common import DOC, drop_institution, machine, sigterm_as_interrupt, write_section  # noqa: E402
from tenants import services  # noqa: E402
from tenants.models import Domain, Institution, ReadySchema  # noqa: E402
from tenants.pool import migration_fingerprint, schema_pool_drain, schema_pool_fill  # noqa: E402
from tenants.services import STEPS, InstitutionSignup, Provisioning, Step, domain_for  # noqa: E402
from tenants.validators import schema_name_for  # noqa: E402

POOL = "Pool claim"
CLONE = "Template clone"
PLAIN = "Plain migrations"
FLOOR = "Floor"
GOAL_MS = 50.0
# The password the admins get; its hash is computed once, before any timing.
BENCH_PASSWORD = "bench-provisioning-password"
# Ready schemas made for the floor path (never in the pool table; dropped at the end).
FLOOR_PREFIX = "benchfloor__"


@dataclass
class Run:
    token: str = field(default_factory=lambda: secrets.token_hex(3))
    subdomains: list[str] = field(default_factory=list)
    floor_schemas: list[str] = field(default_factory=list)
    pool_before: set[str] = field(default_factory=set)
    timings: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def signup(self, kind: str, label: str) -> InstitutionSignup:
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


# --- The four paths: each prepares outside the timing, then returns what is timed ----------------


def _migrate_schema(p: Provisioning) -> None:
    """Create the schema empty and run every tenant migration into it (django-tenants' own way)."""
    p.institution.create_schema(check_if_exists=True, sync_schema=True, verbosity=0)


# The service's steps with the schema step swapped for migrations: everything else is identical.
PLAIN_STEPS: tuple[Step, ...] = tuple(
    Step(step.label, _migrate_schema) if step.run is services._create_schema else step for step in STEPS
)
assert PLAIN_STEPS != STEPS, "tenants.services.STEPS no longer has the _create_schema step"


def prepare_pool(run: Run, label: str) -> Callable[[], object]:
    if not ReadySchema.objects.filter(migration_fingerprint=migration_fingerprint()).exists():
        schema_pool_fill(target=1)  # one ready schema (a clone, outside the timing)
    signup = run.signup("pool", label)

    def timed() -> Provisioning:
        result = services.institution_provision(signup=signup)
        assert result.schema_from_pool, "the pool was empty"
        return result

    return timed


def prepare_clone(run: Run, label: str) -> Callable[[], object]:
    signup = run.signup("clone", label)

    def timed() -> Provisioning:
        with override_settings(TENANT_SCHEMA_POOL_SIZE=0):  # the pool off: every sign-up clones
            result = services.institution_provision(signup=signup)
        assert not result.schema_from_pool
        return result

    return timed


def prepare_plain(run: Run, label: str) -> Callable[[], object]:
    signup = run.signup("plain", label)

    def timed() -> Provisioning:
        # Without TENANT_CREATION_FAKES_MIGRATIONS, create_schema() ignores the base schema
        # (get_base_schema() is only consulted when it is on) and runs `migrate_schemas` instead.
        with (
            override_settings(
                TENANT_CREATION_FAKES_MIGRATIONS=False, TENANT_BASE_SCHEMA=None, TENANT_SCHEMA_POOL_SIZE=0
            ),
            mock.patch.object(services, "STEPS", PLAIN_STEPS),
        ):
            return services.institution_provision(signup=signup)

    return timed


def _insert(model_object: Model) -> tuple[str, list]:
    """A plain INSERT … RETURNING id for `model_object`, with the values Django would save."""
    fields = [f for f in model_object._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = [f.get_db_prep_save(f.pre_save(model_object, add=True), connection) for f in fields]
    placeholders = ", ".join(["%s"] * len(fields))
    table = connection.ops.quote_name(model_object._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING id", values


def prepare_floor(run: Run, label: str) -> Callable[[], object]:
    """A schema cloned beforehand, renamed, plus the institution and domain rows: raw SQL, one transaction."""
    ready = FLOOR_PREFIX + secrets.token_hex(6)
    run.floor_schemas.append(ready)
    CloneSchema().clone_schema(settings.TENANT_BASE_SCHEMA, ready, "DATA")
    subdomain = run.signup("floor", label).subdomain
    schema_name = schema_name_for(subdomain)
    institution = Institution(
        name=f"Bench floor {label}", slug=subdomain, schema_name=schema_name, country="GB", currency="GBP"
    )
    institution_sql, institution_values = _insert(institution)
    domain_sql, domain_values = _insert(
        Domain(domain=domain_for(subdomain), tenant_id=0, is_primary=True, verified_at=timezone.now())
    )
    tenant_column = [f for f in Domain._meta.concrete_fields if not f.primary_key].index(
        Domain._meta.get_field("tenant")
    )
    rename = f"ALTER SCHEMA {quote_schema_name(ready)} RENAME TO {quote_schema_name(schema_name)}"

    def timed() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(rename)
            cursor.execute(institution_sql, institution_values)
            domain_values[tenant_column] = cursor.fetchone()[0]
            cursor.execute(domain_sql, domain_values)

    return timed


PATHS: dict[str, Callable[[Run, str], Callable[[], object]]] = {
    POOL: prepare_pool,
    CLONE: prepare_clone,
    PLAIN: prepare_plain,
    FLOOR: prepare_floor,
}


# --- Bookkeeping and clean-up -------------------------------------------------------------------


def drop_everything(run: Run) -> int:
    """Drop every institution, domain and schema this run made (also after a failure or Ctrl-C)."""
    dropped = sum(drop_institution(subdomain) for subdomain in run.subdomains)
    for schema in run.floor_schemas:
        if schema_exists(schema):
            with connection.cursor() as cursor:
                cursor.execute(f"DROP SCHEMA {quote_schema_name(schema)} CASCADE")
            dropped += 1
    # Pool schemas this run cloned and did not use; the ones that were waiting before stay.
    existing = set(ReadySchema.objects.values_list("schema_name", flat=True))
    return dropped + schema_pool_drain(keep=run.pool_before & existing)


@contextmanager
def prehashed_password() -> Iterator[None]:
    """The admin's password hash is computed once here, so no timing includes the (slow) hashing."""
    password_hash = make_password(BENCH_PASSWORD)
    with mock.patch.object(services, "make_password", lambda password: password_hash):
        yield


# --- Measuring ----------------------------------------------------------------------------------


def measure(run: Run, runs: int) -> None:
    run.timings = {name: [] for name in PATHS}
    run.cpu = {name: [] for name in PATHS}
    names = list(PATHS)
    # One unrecorded provisioning per path first: imports, the migration graph, validators.
    for name in names:
        PATHS[name](run, "warm")()
    for i in range(runs):
        # Rotate which path goes first, so none always runs on a warmer (or colder) cache.
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            timed = PATHS[name](run, str(i))
            connection.set_schema_to_public()
            cpu_started, started = time.process_time(), time.perf_counter()
            timed()
            run.timings[name].append((time.perf_counter() - started) * 1000)
            run.cpu[name].append((time.process_time() - cpu_started) * 1000)
        print(f"  run {i + 1}/{runs}: " + ", ".join(f"{n} {run.timings[n][-1]:.1f} ms" for n in names))


@dataclass(frozen=True)
class Summary:
    path: str
    runs: int
    median: float
    minimum: float
    p90: float
    maximum: float
    cpu_median: float


def summarize(path: str, timings: list[float], cpu: list[float]) -> Summary:
    p90 = statistics.quantiles(timings, n=10, method="inclusive")[8] if len(timings) > 1 else timings[0]
    return Summary(
        path,
        len(timings),
        statistics.median(timings),
        min(timings),
        p90,
        max(timings),
        statistics.median(cpu),
    )


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
    pool = summaries[0].median
    lines = [
        "| Path | Runs | Median (ms) | Min (ms) | p90 (ms) | Max (ms) | CPU (ms) | ÷ pool claim |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.path} | {s.runs} | {s.median:.1f} | {s.minimum:.1f} | {s.p90:.1f} | {s.maximum:.1f}"
            f" | {s.cpu_median:.1f} | {s.median / pool:.2f}× |"
        )
    return "\n".join(lines)


def verdict(summaries: list[Summary]) -> str:
    pool = summaries[0].median
    return (
        f"Goal: go-live (pool claim) median ≤ {GOAL_MS:.0f} ms — {'met' if pool <= GOAL_MS else 'NOT met'}."
    )


def section(command: str, summaries: list[Summary], host: dict[str, str], load: tuple[float, float]) -> str:
    tables, migrations = template_size()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    template = settings.TENANT_BASE_SCHEMA
    return f"""## Go-live: provisioning an institution from the schema pool, by cloning, by migrations

```sh
{command}
```

- Date: {now}
- Machine: {host["nproc"]} CPUs (`nproc`), {host["cpu"]}; PostgreSQL {host["postgres"]} on the same machine
- Template schema `{template}`: {tables} tenant tables, {migrations} recorded migrations
- Load average (1 min) at the start and at the end of the measurements: {load[0]:.1f}, {load[1]:.1f}

{table(summaries)}

{verdict(summaries)}

- **{POOL}**: `tenants.services.institution_provision()` exactly as sign-up runs it, with a ready
  schema waiting: one transaction that checks the details, saves the institution, claims a pool schema
  (`DELETE … SELECT … FOR UPDATE SKIP LOCKED`, `ALTER SCHEMA … RENAME`), adds the domain, starts the
  trial, creates the first admin and the sign-in link; after the commit it asks a worker to refill the
  pool and to send the verification email (two Celery messages) and tells the other processes' host
  directories.
- **{CLONE}**: the same service with the pool off (`TENANT_SCHEMA_POOL_SIZE=0`): django-tenants'
  `CloneSchema` copies `{template}` inside the transaction.
- **{PLAIN}**: the same service, with the schema step replaced by django-tenants'
  `Institution.create_schema(sync_schema=True)` with `TENANT_CREATION_FAKES_MIGRATIONS=False`
  (an empty schema, then `migrate_schemas` for it: every migration, content types, permissions).
- **{FLOOR}**: the least any schema-per-tenant go-live can do: one transaction with
  `ALTER SCHEMA … RENAME` of a schema cloned beforehand and plain `INSERT`s of the institution and
  domain rows, prepared in advance (no validation, no admin, no trial, no signals).
- The four paths take turns within each run (which goes first rotates), after one unrecorded warm-up
  each. What a path needs ready (a pool schema, cloned with `schema_pool_fill(target=1)` when none
  waits; the floor's schema) is made before its timer starts. Password hashing is excluded: the admin's
  hash is computed once beforehand and `tenants.services.make_password` returns it. p90 is interpolated
  (`statistics.quantiles`, inclusive). "CPU" is the benchmark process's CPU time
  (`time.process_time()`), the Python side of the work: a steadier figure than wall time when the
  machine is busy. Every institution, domain and schema made is dropped at the end, also on Ctrl-C."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="measured provisionings per path (default 15)")
    parser.add_argument("--quick", action="store_true", help="3 runs per path (for make bench-quick)")
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    if runs < 1:
        parser.error("--runs must be at least 1")

    settings_module = os.environ["DJANGO_SETTINGS_MODULE"]
    command = f"DJANGO_SETTINGS_MODULE={settings_module} python bench/provision.py" + (
        " --quick" if args.quick else f" --runs {runs}"
    )
    print("Applying migrations (migrate_schemas) …")
    call_command("migrate_schemas", "--noinput", verbosity=0)
    connection.set_schema_to_public()

    load = os.getloadavg()[0]
    run = Run(pool_before=set(ReadySchema.objects.values_list("schema_name", flat=True)))
    print(f"Provisioning {runs} institutions per path (+1 warm-up each), interleaved:")
    try:
        with sigterm_as_interrupt(), prehashed_password():
            measure(run, runs)
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
        print(f"Dropped {dropped} institutions and schemas made by this run.")

    summaries = [summarize(path, run.timings[path], run.cpu[path]) for path in PATHS]
    print()
    print(table(summaries))
    print()
    print(verdict(summaries))
    if not args.no_doc:
        write_section("provision", section(command, summaries, machine(), (load, os.getloadavg()[0])))
        print(f"Wrote the results to {DOC.relative_to(REPO_ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
