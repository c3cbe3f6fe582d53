"""The benchmark suite: every script in bench/, one after another, on one machine.

    python bench/run.py            # every benchmark with its full settings; updates docs/benchmarks.md
    python bench/run.py --quick    # smaller sizes and fewer runs; prints only, leaves the docs alone
    python bench/run.py --only provision,pages

`make bench` and `make bench-quick` call this through scripts/with_services.py, so DATABASE_URL and
REDIS_URL point at the embedded servers unless they are set. The database is migrated once first.
Each script compares its figures with a baseline measured in the same run and writes its own section
of docs/benchmarks.md; this runner adds a section with the time each one took. Benchmarks report;
they never fail on a figure (a script that crashes does fail the run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BUDGET_SECONDS = 15 * 60


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    what: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()


SUITE: tuple[Benchmark, ...] = (
    Benchmark(
        "provision",
        "bench/provision.py",
        "go-live time: schema pool vs clone vs migrations",
        ("--runs", "9"),
        ("--quick",),
    ),
    Benchmark(
        "migrate_schemas",
        "bench/migrate_schemas.py",
        "migrate_schemas with nothing pending over 1,000 institutions",
        ("--baseline-sample", "40"),
        ("--quick",),
    ),
    Benchmark(
        "throughput",
        "bench/throughput.py",
        "mentor directory API under wrk: tenancy overhead, 1 vs 1,000 institutions, bare view",
        (),
        ("--quick",),
    ),
    Benchmark(
        "pages", "bench/pages.py", "learner pages with 100 mentors and 5,000 bookings", (), ("--quick",)
    ),
    Benchmark(
        "ws_relay",
        "bench/ws_relay.py",
        "live-room relay, 1,000 WebSockets for 60 s, against a bare echo",
        ("--layer", "pubsub"),
        ("--layer", "pubsub", "--connections", "200", "--seconds", "10"),
    ),
    Benchmark(
        "slots",
        "bench/slots.py",
        "slot generation over an 8-week horizon",
        ("--no-migrate",),
        ("--no-migrate", "--runs", "10"),
    ),
    Benchmark(
        "directory",
        "bench/directory.py",
        "directory search over 2,000 mentors",
        (),
        ("--mentors", "200", "--runs", "10"),
    ),
    Benchmark(
        "reminders_tick",
        "bench/reminders_tick.py",
        "reminder tick, 10 vs 1,000 institutions",
        (),
        ("--runs", "5"),
    ),
    Benchmark(
        "analytics",
        "bench/analytics.py",
        "admin analytics over 100,000 bookings",
        (),
        ("--bookings", "5000", "--mentors", "50", "--learners", "200", "--runs", "5"),
    ),
    Benchmark(
        "abuse_limits",
        "bench/abuse_limits.py",
        "what sign-in lockouts and API rate limits cost per request",
        ("--no-migrate",),
        ("--no-migrate", "--runs", "20"),
    ),
    Benchmark(
        "http_servers",
        "bench/http_servers.py",
        "gunicorn vs uvicorn vs daphne",
        ("--seconds", "5"),
        ("--seconds", "3"),
    ),
)


def run_one(bench: Benchmark, *, quick: bool, env: dict[str, str]) -> tuple[int, float]:
    command = [PYTHON, bench.script, *(bench.quick if quick else bench.full)]
    if quick:
        command.append("--no-doc")
    print(f"\n=== {bench.name}: {bench.what}\n$ {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    returncode = subprocess.call(command, cwd=REPO_ROOT, env=env)
    return returncode, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs, no doc changes")
    parser.add_argument(
        "--only", default="", help="comma-separated names: " + ", ".join(b.name for b in SUITE)
    )
    args = parser.parse_args()
    names = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = names - {b.name for b in SUITE}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    selected = [b for b in SUITE if not names or b.name in names]

    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    print("=== migrating the database", flush=True)
    migrate_started = time.monotonic()
    subprocess.check_call([PYTHON, "manage.py", "migrate_schemas", "-v", "0"], cwd=REPO_ROOT, env=env)
    results: list[tuple[Benchmark, int, float]] = [
        (Benchmark("migrate", "manage.py", "migrate first"), 0, time.monotonic() - migrate_started)
    ]
    for bench in selected:
        returncode, seconds = run_one(bench, quick=args.quick, env=env)
        results.append((bench, returncode, seconds))

    total = sum(seconds for _, _, seconds in results)
    print("\n=== summary")
    for bench, returncode, seconds in results:
        status = "ok" if returncode == 0 else f"FAILED (exit {returncode})"
        print(f"  {bench.name:<16} {seconds:7.1f} s  {status}")
    print(
        f"  {'total':<16} {total:7.1f} s"
        + ("" if args.quick or total <= BUDGET_SECONDS else "  (over the 15-minute budget)")
    )
    failed = [bench.name for bench, returncode, _ in results if returncode != 0]
    if not args.quick and not names and not failed:
        write_run_section(results, total)
    return 1 if failed else 0


def write_run_section(results: list[tuple[Benchmark, int, float]], total: float) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    import django

    django.setup()
    from bench.common import machine, write_section

    info = machine()
    rows = "\n".join(f"| `{bench.name}` | {bench.what} | {seconds:.0f} |" for bench, _, seconds in results)
    body = f"""## The whole suite (`make bench`)

```sh
make bench    # python bench/run.py through scripts/with_services.py
```

- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC
- Machine: {info["nproc"]} CPUs (`nproc`), {info["cpu"]}; PostgreSQL {info["postgres"]} on the same machine
- Total: **{total / 60:.1f} minutes** (budget 15)

| Benchmark | What | Seconds |
|---|---|---:|
{rows}
"""
    write_section("run", body)


if __name__ == "__main__":
    sys.exit(main())
