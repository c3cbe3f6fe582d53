"""`migrate_schemas` with nothing to apply, over many institutions: the standard executor (one schema
after another) against django-tenants' multiprocessing executor (a pool of forked workers).

Every deploy runs `migrate_schemas`; with no pending migration it still visits every schema (the
migration graph, the applied set, post-migrate content types and permissions), so its cost grows
with the number of institutions. This script makes --institutions throw-away institutions whose
schemas are copies of the template (what sign-up's clone makes, restored from one dump of the
template: cloning slows down as the catalog grows, and hundreds of clones would take most of the
run), times the command with each executor, writes the figures into docs/benchmarks.md and drops
the institutions again, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.utils import quote_schema_name  # noqa: E402

from bench.common import DOC, machine, sigterm_as_interrupt, write_section  # noqa: E402
from tenants.backup import libpq_env, postgres_tool  # noqa: E402
from tenants.models import Domain, Institution  # noqa: E402
from tenants.services import domain_for  # noqa: E402
from tenants.validators import schema_name_for  # noqa: E402

# Schemas restored per transaction (each takes a lock per table and index until it commits).
BATCH = 10


def make_institutions(count: int, token: str, made: list[str]) -> float:
    """Make `count` institutions with schemas copied from the template; seconds taken.

    The schemas are what sign-up's clone makes (every table, migration record, content type and
    permission of the template), restored from one dump of the template in batches (see
    `copy_template`). Names go into `made` before anything is created, for the clean-up.
    """
    template = settings.TENANT_BASE_SCHEMA
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peerlearn-bench-") as work:
        dump = Path(work) / "template.dump"
        subprocess.run(
            [
                postgres_tool("pg_dump"),
                "--format=custom",
                f"--schema={template}",
                "--no-owner",
                f"--file={dump}",
            ],
            env=libpq_env(),
            check=True,
        )
        script = subprocess.run(
            [postgres_tool("pg_restore"), "--no-owner", "--no-privileges", "--file=-", str(dump)],
            env=libpq_env(),
            check=True,
            capture_output=True,
        ).stdout.decode()
    subdomains = [f"bench-mig-{token}-{i}" for i in range(count)]
    for first in range(0, count, BATCH):
        batch = subdomains[first : first + BATCH]
        made.extend(batch)
        copy_template(script, template, [schema_name_for(subdomain) for subdomain in batch])
        for subdomain in batch:
            institution = Institution.objects.create(
                name=f"Bench migrate {subdomain}",
                slug=subdomain,
                schema_name=schema_name_for(subdomain),
                country="GB",
                currency="GBP",
                timezone="Europe/London",
            )
            Domain.objects.create(
                domain=domain_for(subdomain), tenant=institution, is_primary=True, verified_at=timezone.now()
            )
        if (first + len(batch)) % 50 == 0:
            print(f"  {first + len(batch)}/{count} made ({time.perf_counter() - started:.0f} s)")
    return time.perf_counter() - started


def copy_template(script: str, template: str, schemas: list[str]) -> None:
    """Restore the template's dump as each of `schemas`, in one transaction.

    The dump creates a schema named like the template: the template is moved aside while each
    copy is restored and renamed, then put back (tenants/backup.py restores the same way).
    """
    aside = quote_schema_name(f"{template}_bench_aside")
    statements = [f"ALTER SCHEMA {quote_schema_name(template)} RENAME TO {aside};"]
    for schema in schemas:
        statements += [
            script,
            f"ALTER SCHEMA {quote_schema_name(template)} RENAME TO {quote_schema_name(schema)};",
        ]
    statements.append(f"ALTER SCHEMA {aside} RENAME TO {quote_schema_name(template)};")
    subprocess.run(
        [
            postgres_tool("psql"),
            "--no-psqlrc",
            "--quiet",
            "--single-transaction",
            "--set=ON_ERROR_STOP=1",
            "-f",
            "-",
        ],
        input="\n".join(statements).encode(),
        env=libpq_env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def drop_all(made: list[str]) -> int:
    """Drop the institutions in `made`, their domains and schemas (also half-made ones)."""
    connection.close()  # an interrupted query may have left the connection unusable
    connection.set_schema_to_public()
    # A few per transaction: django-tenants drops each deleted institution's schema in the
    # deleting transaction, which holds a lock per table until it commits.
    dropped = 0
    for first in range(0, len(made), BATCH):
        batch = Institution.objects.filter(slug__in=made[first : first + BATCH])
        dropped += batch.count()
        batch.delete()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [[schema_name_for(s) for s in made]]
        )
        schemas = [row[0] for row in cursor.fetchall()]
        # Schemas made without their institution row (an interrupted batch).
        for first in range(0, len(schemas), BATCH):
            names = ", ".join(quote_schema_name(schema) for schema in schemas[first : first + BATCH])
            cursor.execute(f"DROP SCHEMA {names} CASCADE")
    return dropped + len(schemas)


def _default_sigterm_in_workers() -> None:
    # The pool stops its workers with SIGTERM; they must not turn it into KeyboardInterrupt as the
    # parent does (sigterm_as_interrupt), which printed a traceback for every worker.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_sigterm_in_workers)


def migrate(executor: str, processes: int) -> float:
    """One `migrate_schemas --noinput` (public, every institution, the template); seconds taken."""
    connection.close()
    with override_settings(TENANT_MULTIPROCESSING_MAX_PROCESSES=processes):
        started = time.perf_counter()
        call_command("migrate_schemas", "--noinput", executor=executor, verbosity=0)
        elapsed = time.perf_counter() - started
    # The executor never closes its pool: its idle workers (and their connections) would pile up.
    for child in multiprocessing.active_children():
        child.kill()
        child.join()
    connection.set_schema_to_public()
    return elapsed


def schema_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_namespace"
            " WHERE nspname <> 'public' AND nspname !~ '^(pg_|information_schema)'"
        )
        return cursor.fetchone()[0]


def section(command: str, rows: list[tuple[str, int, list[float]]], institutions: int, host: dict) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    baseline = statistics.median(rows[0][2])
    lines = [
        "| Executor | Processes | Runs | Median (s) | Min (s) | Max (s) | Per schema (ms) | Speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for executor, processes, timings in rows:
        median = statistics.median(timings)
        lines.append(
            f"| {executor} | {processes if executor == 'multiprocessing' else 1} | {len(timings)} "
            f"| {median:.1f} | {min(timings):.1f} | {max(timings):.1f} "
            f"| {median * 1000 / institutions:.0f} | {baseline / median:.2f}× |"
        )
    table = "\n".join(lines)
    return f"""## `migrate_schemas` with nothing to apply: standard vs. multiprocessing executor

```sh
{command}
```

- Date: {now}
- Machine: {host["nproc"]} CPUs (`nproc`), {host["cpu"]}; PostgreSQL {host["postgres"]} on the same machine
- Institutions: {institutions} (throw-away, made for the run: each schema a copy of the template) plus
  the public and template schemas and whatever institutions the database already had

{table}

- Each run is one in-process `call_command("migrate_schemas", "--noinput", executor=…)` with no
  pending migration: the steady-state cost every deploy pays. "Per schema" divides the median by
  the institutions made for the run.
- `multiprocessing` is django-tenants' `MultiprocessingExecutor`: a `fork` pool of
  `TENANT_MULTIPROCESSING_MAX_PROCESSES` workers, schemas handed out in chunks of
  `TENANT_MULTIPROCESSING_CHUNKS` (2, the default). The public schema is migrated first, alone.
- Executors alternate within each round (which one goes first alternates too). Every institution,
  domain and schema made is dropped at the end."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--institutions", type=int, default=200, help="institutions to make (200)")
    parser.add_argument("--runs", type=int, default=2, help="timed runs per executor (2)")
    parser.add_argument(
        "--processes", default="2,4", help="worker counts of the multiprocessing executor (2,4)"
    )
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    args = parser.parse_args()
    processes = [int(value) for value in args.processes.split(",") if value.strip()]
    if args.institutions < 1 or args.runs < 1 or not processes:
        parser.error("--institutions and --runs must be at least 1, --processes not empty")

    settings_module = os.environ["DJANGO_SETTINGS_MODULE"]
    command = (
        f"DJANGO_SETTINGS_MODULE={settings_module} python bench/migrate_schemas.py "
        f"--institutions {args.institutions} --runs {args.runs} --processes {args.processes}"
    )
    print("Applying migrations (migrate_schemas) …")
    call_command("migrate_schemas", "--noinput", verbosity=0)
    connection.set_schema_to_public()

    token = secrets.token_hex(3)
    made: list[str] = []
    configurations = [("standard", 1)] + [("multiprocessing", n) for n in processes]
    timings: dict[tuple[str, int], list[float]] = {c: [] for c in configurations}
    try:
        with sigterm_as_interrupt():
            print(f"Making {args.institutions} institutions (schemas copied from the template) …")
            seconds = make_institutions(args.institutions, token, made)
            each = seconds * 1000 / args.institutions
            print(f"  {seconds:.0f} s ({each:.0f} ms each); {schema_count()} schemas in the database")
            migrate("standard", 1)  # warm-up, unrecorded: imports, the migration graph, caches
            for run in range(args.runs):
                order = configurations if run % 2 == 0 else list(reversed(configurations))
                for executor, count in order:
                    elapsed = migrate(executor, count)
                    timings[(executor, count)].append(elapsed)
                    print(f"  run {run + 1}/{args.runs}: {executor} ×{count}: {elapsed:.1f} s")
    except KeyboardInterrupt:
        print("\nInterrupted: cleaning up.", file=sys.stderr)
        return 130
    finally:
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            started = time.perf_counter()
            dropped = drop_all(made)
            leftover = Institution.objects.filter(slug__startswith=f"bench-mig-{token}-").count()
        finally:
            signal.signal(signal.SIGTERM, previous)
        print(f"Dropped {dropped} institutions in {time.perf_counter() - started:.0f} s ({leftover} left).")

    rows = [(executor, count, timings[(executor, count)]) for executor, count in configurations]
    body = section(command, rows, args.institutions, machine())
    print()
    print(body)
    if not args.no_doc:
        write_section("migrate_schemas", body)
        print(f"Wrote the results to {DOC.relative_to(REPO_ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
