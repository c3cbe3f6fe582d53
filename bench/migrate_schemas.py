"""`migrate_schemas` with nothing to apply, over many institutions: django-tenants' own command
(standard and multiprocessing executors) against ours (tenants/management/commands/migrate_schemas.py),
side by side on the same institutions in the same run.

Every deploy runs `migrate_schemas`. django-tenants runs `migrate` in every schema even when nothing
is pending, and each of those runs lists every table of the database a few times, so the command
grows with the square of the number of institutions. Ours looks `django_migrations` up by name
(`--all-schemas` still runs `migrate` everywhere, now in linear time), and by default reads every
schema's applied migrations in a few queries and runs `migrate` only where something is pending.

The institutions come from bench/fleet.py (real rows, schemas copied from the template) and are
dropped at the end, also on Ctrl-C or SIGTERM. django-tenants' command at 1,000 institutions takes
many minutes, so by default it runs over a sample of them (--baseline-sample; 0 runs it over all):
`migrate` costs the same in any schema, and the catalog it lists is the whole database's either
way, so the sample's time per institution is the full command's. The figures go into
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402

django.setup()

from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.migrations.loader import MigrationLoader  # noqa: E402
from django.test import override_settings  # noqa: E402
from django_tenants.management.commands.migrate_schemas import (  # noqa: E402
    MigrateSchemasCommand as TenantsMigrateSchemas,
)
from django_tenants.migration_executors import get_executor  # noqa: E402
from django_tenants.utils import quote_schema_name  # noqa: E402

from bench.common import DOC, machine, write_section  # noqa: E402
from bench.fleet import CONNECTIONS, fleet  # noqa: E402
from tenants import migration_state  # noqa: E402


def _default_sigterm_in_workers() -> None:
    # The pool stops its workers with SIGTERM; they must not turn it into KeyboardInterrupt as the
    # parent does (sigterm_as_interrupt), which printed a traceback for every worker.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_sigterm_in_workers)


def _kill_pool_workers() -> None:
    # The multiprocessing executor never closes its pool: idle workers (and connections) pile up.
    for child in multiprocessing.active_children():
        child.kill()
        child.join()


def ours(*arguments: str) -> tuple[float, float]:
    """One in-process `migrate_schemas --noinput` of ours; wall and CPU seconds of this process."""
    connection.close()
    started, cpu = time.perf_counter(), time.process_time()
    call_command("migrate_schemas", "--noinput", *arguments, verbosity=0)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    connection.set_schema_to_public()
    return elapsed, cpu


def theirs(executor: str, processes: int, sample: list[str] | None) -> tuple[float, float]:
    """django-tenants' command with `executor`: public and every institution (`sample` None), or
    public and the institutions of `sample` through the same executor. Wall and CPU seconds."""
    connection.close()
    command = TenantsMigrateSchemas()
    with override_settings(TENANT_MULTIPROCESSING_MAX_PROCESSES=processes):
        started, cpu = time.perf_counter(), time.process_time()
        if sample is None:
            call_command(command, "--noinput", executor=executor, verbosity=0)
        else:
            parser = command.create_parser("manage.py", "migrate_schemas")
            options = vars(parser.parse_args(["--noinput", "--verbosity=0", f"--executor={executor}"]))
            runner = get_executor(codename=executor)([], options)
            runner.run_migrations(tenants=["public"])
            runner.run_migrations(tenants=list(sample))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    _kill_pool_workers()
    connection.set_schema_to_public()
    return elapsed, cpu


def migrate_in_new_process() -> tuple[float, str]:
    """`manage.py migrate_schemas --noinput` as a deploy runs it: seconds, and its summary line."""
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, "manage.py", "migrate_schemas", "--noinput"],
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    summary = next(
        (
            line
            for line in finished.stdout.splitlines()
            if "up to date" in line or "Migrations to apply" in line
        ),
        "",
    )
    return elapsed, summary.strip()


def harmless_migration() -> tuple[str, str]:
    """A migration that re-applies as a no-op in a tenant schema: the last one of a public-only app
    (in an institution's schema the router skips its operations and only its record is written)."""
    configs = apps.get_app_configs()
    shared_only = {
        c.label for c in configs if c.name in settings.SHARED_APPS and c.name not in settings.TENANT_APPS
    }
    loader = MigrationLoader(None, ignore_no_migrations=True)
    for app, name in sorted(loader.graph.leaf_nodes()):
        if app in shared_only:
            return app, name
    raise RuntimeError("no public-only app with migrations")


def forget_migration(schema_name: str, migration: tuple[str, str]) -> None:
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {quote_schema_name(schema_name)}.django_migrations WHERE app = %s AND name = %s",
            list(migration),
        )


def schema_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname <> 'information_schema' AND nspname !~ '^pg_'"
        )
        return cursor.fetchone()[0]


def catalog_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class")
        return cursor.fetchone()[0]


class Row:
    """One way of running the command, and its timed runs (over `covered` of the institutions)."""

    def __init__(self, label: str, covered: int) -> None:
        self.label = label
        self.covered = covered
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def add(self, timing: tuple[float, float]) -> float:
        self.wall.append(timing[0])
        self.cpu.append(timing[1])
        return timing[0]

    def total(self, institutions: int) -> float:
        """Median seconds for all `institutions` (scaled from the sample, if it ran over one)."""
        return statistics.median(self.wall) * institutions / self.covered


def speed_up(ratio: float) -> str:
    return f"{ratio:.1f}×" if ratio < 10 else f"{ratio:,.0f}×"


def section(command: str, rows: list[Row], institutions: int, extra: dict[str, str], host: dict) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    baseline = rows[0].total(institutions)
    lines = [
        f"| Command | Ran over | Runs | Median (s) | Per institution (ms) | For {institutions:,} (s) "
        "| Speed-up | CPU here (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        median = statistics.median(row.wall)
        scaled = "" if row.covered == institutions else "≈ "
        lines.append(
            f"| {row.label} | {row.covered:,} | {len(row.wall)} | {median:.2f} "
            f"| {median * 1000 / row.covered:.1f} | {scaled}{row.total(institutions):.1f} "
            f"| {speed_up(baseline / row.total(institutions))} | {statistics.median(row.cpu):.2f} |"
        )
    table = "\n".join(lines)
    return f"""## `migrate_schemas` with nothing to apply: django-tenants' command vs. ours

```sh
{command}
```

- Date: {now}
- Machine: {host["nproc"]} CPUs (`nproc`), {host["cpu"]}; PostgreSQL {host["postgres"]} on the same machine
- Institutions: {institutions:,} made for the run by bench/fleet.py (real rows, each schema a copy of
  the template) in {extra["fleet"]}; {extra["schemas"]} schemas and {extra["catalog"]} `pg_class`
  rows in the database

{table}

- Every row runs with no pending migration (the steady-state cost of every deploy), in this process,
  on the same institutions. "Ran over": the institutions a run covered (plus the public schema);
  django-tenants' command runs over a sample of them unless `--baseline-sample 0`: its time per
  institution does not depend on which ones, and "For {institutions:,}" scales it up (≈). Speed-up is
  against the first row's figure for {institutions:,}.
- django-tenants' command: its `migrate_schemas` (`migrate` in every schema; each run lists every
  table of the database about four times to find `django_migrations`). `multiprocessing` is its
  `MultiprocessingExecutor`, a `fork` pool of that many workers.
- Ours, `--all-schemas`: `migrate` in every schema too, with `django_migrations` looked up by name.
- Ours, the default: one query lists the schemas that have a `django_migrations` table, one UNION ALL
  per 200 schemas reads what they recorded, and `migrate` runs in the public schema only; median of
  its runs after one unrecorded warm-up.
- "CPU here": CPU seconds of the benchmark's process (`time.process_time()`, median), the figure
  that moves least on a busy machine; Postgres' share is not in it, nor the pool workers'.
- One institution behind (its record of `{extra["migration"]}` deleted; ours re-applies it there and
  nowhere else): {extra["one_behind"]}.
- End to end in a new process (`manage.py migrate_schemas --noinput`, as a deploy runs it, Python and
  Django start-up included): {extra["new_process"]}, printing "{extra["summary"]}"."""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--institutions", type=int, default=1000, help="institutions to make (1000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of our default command (5)")
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=100,
        help="institutions django-tenants' command and --all-schemas run over (100; 0: all of them)",
    )
    parser.add_argument(
        "--processes", type=int, default=4, help="workers of the multiprocessing executor (4)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=CONNECTIONS,
        help=f"connections making the institutions ({CONNECTIONS})",
    )
    parser.add_argument("--quick", action="store_true", help="100 institutions, one run of each, no sampling")
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    args = parser.parse_args()
    if args.quick:
        args.institutions, args.runs, args.baseline_sample = min(args.institutions, 100), 1, 0
    if min(args.institutions, args.runs, args.processes, args.connections) < 1 or args.baseline_sample < 0:
        parser.error("--institutions, --runs, --processes and --connections must be at least 1")

    settings_module = os.environ["DJANGO_SETTINGS_MODULE"]
    command = (
        f"DJANGO_SETTINGS_MODULE={settings_module} python bench/migrate_schemas.py "
        f"--institutions {args.institutions} --runs {args.runs} --baseline-sample {args.baseline_sample} "
        f"--processes {args.processes}"
    )
    print("Applying migrations (migrate_schemas) …", flush=True)
    call_command("migrate_schemas", "--noinput", verbosity=0)
    connection.set_schema_to_public()

    sampled = 0 < args.baseline_sample < args.institutions
    covered = args.baseline_sample if sampled else args.institutions
    standard = Row("django-tenants' command, standard executor", covered)
    parallel = Row(f"django-tenants' command, multiprocessing ×{args.processes}", covered)
    every = Row("ours, `--all-schemas`", covered)
    default = Row("**ours, default (pending-only)**", args.institutions)
    extra: dict[str, str] = {}
    try:
        started = time.perf_counter()
        with fleet(args.institutions, prefix="bench-mig", connections=args.connections) as institutions:
            seconds = time.perf_counter() - started
            extra["fleet"] = f"{seconds:.0f} s ({seconds * 1000 / args.institutions:.0f} ms each)"
            extra["schemas"], extra["catalog"] = f"{schema_count():,}", f"{catalog_rows():,}"
            names = [i.schema_name for i in institutions]
            # Spread over the fleet, as the whole command would meet them.
            sample = names[:: max(1, len(names) // covered)][:covered] if sampled else None

            ours()  # warm-up, unrecorded: imports, the migration graph, caches
            for run in range(args.runs):
                print(f"  ours, default, run {run + 1}/{args.runs}: {default.add(ours()):.2f} s", flush=True)
            print(
                f"  django-tenants', standard: {standard.add(theirs('standard', 1, sample)):.1f} s",
                flush=True,
            )
            wall = parallel.add(theirs("multiprocessing", args.processes, sample))
            print(f"  django-tenants', multiprocessing ×{args.processes}: {wall:.1f} s", flush=True)
            if sample is None:
                wall = every.add(ours("--all-schemas"))
            else:  # what `--all-schemas` does in each schema, over the sample
                with migration_state.migration_table_found_by_name():
                    wall = every.add(theirs("standard", 1, sample))
            print(f"  ours, --all-schemas: {wall:.1f} s", flush=True)

            migration = harmless_migration()
            forget_migration(names[len(names) // 2], migration)
            extra["migration"] = ".".join(migration)
            extra["one_behind"] = f"{ours()[0]:.2f} s"
            print(f"  ours, one institution behind: {extra['one_behind']}", flush=True)
            elapsed, extra["summary"] = migrate_in_new_process()
            extra["new_process"] = f"{elapsed:.1f} s"
            print(f"  ours, end to end in a new process: {elapsed:.1f} s ({extra['summary']})", flush=True)
    except KeyboardInterrupt:
        print("\nInterrupted (the institutions were dropped).", file=sys.stderr)
        return 130

    body = section(command, [standard, parallel, every, default], args.institutions, extra, machine())
    print()
    print(body)
    if not args.no_doc:
        write_section("migrate_schemas", body)
        print(f"Wrote the results to {DOC.relative_to(REPO_ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
