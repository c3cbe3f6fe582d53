"""Mentor directory API throughput under wrk: what tenancy costs, and 1 vs 1,000 institutions.

One gunicorn, started as production starts it (deploy/gunicorn.conf.py: sync workers,
WEB_CONCURRENCY=2 for the 2-core machine; production settings with DEBUG off), serves a throw-away
institution with 100 mentors (profiles, expertise, languages, ratings, weekly hours, stored next
free slots) and a learner with an API token. bench/throughput_server/ only adds what the bench needs:
a bare JSON view and a header that bypasses tenant resolution. wrk keeps 50 connections busy for a
fixed time per path, the paths rotating within each round; each figure is the median of the rounds.

    (a) tenant host     GET /api/v1/mentors/ (a page of 20), token-authenticated, on the institution's host
    (b) bypassed        the same request, but the institution is set directly (no host resolution)
    (c) bare JSON       GET /bench/json on the same server: a tiny JSON body through the same middleware
    (d) 1,000           (a) and (c) again with 1,000 institutions (bench/fleet.py) in the database

    DJANGO_SETTINGS_MODULE=config.settings.dev DATABASE_URL=… REDIS_URL=… \\
        .venv/bin/python bench/throughput.py [--seconds 10] [--runs 3] [--fleet 1000] [--quick] [--no-doc]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402

django.setup()

from cryptography.fernet import Fernet  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from bench.common import DOC, drop_institution, machine, sigterm_as_interrupt, write_section  # noqa: E402
from bench.directory import bulk_create_mentors  # noqa: E402
from bench.throughput_server.middleware import BYPASS_HEADER  # noqa: E402
from tenant_apps.accounts.models import User  # noqa: E402
from tenant_apps.sessions.models import MentorProfile, WeeklyAvailability  # noqa: E402
from tenant_apps.sessions.search import mentor_search_refresh  # noqa: E402
from tenants.models import Institution  # noqa: E402
from tenants.services import InstitutionSignup, institution_provision  # noqa: E402

SEED = 20261126
MENTORS = 100
CONNECTIONS = 50
WRK_THREADS = 2
WRK_TIMEOUT_SECONDS = 10
FLEET = 1000
QUICK_FLEET = 200
WORKERS = 2  # docs/deploy.md: WEB_CONCURRENCY for a 2-core machine
START_TIMEOUT = 60.0
API_PATH = "/api/v1/mentors/"
BARE_PATH = "/bench/json"
APPLICATION_NAME = "peerlearn-throughput-bench"  # bench/throughput_server/settings.py
# Goals (performance issue #10).
GOAL_RESOLUTION_RATIO = 0.90  # (a) / (b)
GOAL_FLEET_DRIFT = 0.05  # |(d) / (a) - 1|
GOAL_RPS = 600.0
GOAL_P99_MS = 150.0
GOAL_BARE_RATIO = 0.15  # (a) / (c)

# wrk's summary as one JSON line (latencies in microseconds).
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"timeout": %d, "status": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    path: str
    headers: tuple[tuple[str, str], ...]


@dataclass
class Measurement:
    target: str
    phase: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    server_cpu_ms: float  # gunicorn (master and workers), per request
    db_cpu_ms: float  # the Postgres backends serving them, per request


@dataclass
class Summary:
    target: str
    phase: str
    runs: list[Measurement] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(getattr(run, name) for run in self.runs)


# --- The institution ---------------------------------------------------------------------------


def provision(subdomain: str) -> tuple[Institution, str]:
    """A realistic institution: 100 mentors with profiles, weekly hours and ratings; a learner's token."""
    rng = random.Random(SEED)
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        institution = institution_provision(
            signup=InstitutionSignup(
                name="Bench Throughput",
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
        bulk_create_mentors(MENTORS, rng)
        hours = []
        for profile in MentorProfile.objects.all():
            for weekday in rng.sample(range(7), rng.randint(2, 5)):
                start = rng.randint(7, 14)
                hours.append(
                    WeeklyAvailability(
                        mentor=profile,
                        weekday=weekday,
                        start_time=dt.time(start),
                        end_time=dt.time(start + rng.randint(2, 6)),
                    )
                )
        WeeklyAvailability.objects.bulk_create(hours)
        mentor_search_refresh()
        learner = User.objects.create_user(
            email=f"learner@{subdomain}.example",
            password=secrets.token_urlsafe(16),
            full_name="Bench Learner",
            role=User.Role.LEARNER,
            timezone="Asia/Kolkata",
        )
        token = Token.objects.create(user=learner).key
        with connection.cursor() as cursor:
            for table in ("mentoring_mentorprofile", "accounts_user", "authtoken_token"):
                cursor.execute(f"ANALYZE {table}")
    connection.set_schema_to_public()
    return institution, token


def institution_count() -> int:
    connection.set_schema_to_public()
    return Institution.objects.exclude(schema_name="public").count()


# --- The server --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tree(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                queue += [int(child) for child in (task / "children").read_text().split()]
    return found


def _cpu_seconds(pids: list[int], *, reaped_of: int | None = None) -> float:
    """User + system time of `pids`, plus that of the children `reaped_of` has waited for (gunicorn's
    master reaps the workers that max_requests recycles)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            if pid == reaped_of:
                total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def _db_backend_pids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME])
        return [row[0] for row in cursor.fetchall()]


def _fetch(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    def pids(self) -> list[int]:
        return _tree(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(env: dict[str, str], log_path: Path, host: str) -> Server:
    """gunicorn with deploy/gunicorn.conf.py; only the address is changed (loopback, a free port)."""
    port = _free_port()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(REPO_ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
        "config.wsgi:application",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, process_group=0
        )
    server = Server(process, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    headers = {"Host": host, "X-Forwarded-Proto": "https"}
    while _fetch(port, BARE_PATH, headers)[0] != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)
    return server


# --- Load ------------------------------------------------------------------------------------------


def wrk(port: int, target: Target, *, seconds: int, script: Path) -> dict:
    argv = ["wrk", "-t", str(WRK_THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "-s", str(script)]
    # A slow answer is a latency, not an error (wrk's default gives up after 2 s).
    argv += ["--timeout", f"{WRK_TIMEOUT_SECONDS}s"]
    for name, value in target.headers:
        argv += ["-H", f"{name}: {value}"]
    argv.append(f"http://127.0.0.1:{port}{target.path}")
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^WRK_JSON (.*)$", output, re.MULTILINE)
    if not match:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    return json.loads(match[1])


def measure(server: Server, target: Target, phase: str, *, seconds: int, script: Path) -> Measurement:
    master = server.process.pid
    pids, db_pids = server.pids(), _db_backend_pids()
    server_before, db_before = _cpu_seconds(pids, reaped_of=master), _cpu_seconds(db_pids)
    report = wrk(server.port, target, seconds=seconds, script=script)
    # Workers started during the run count in full; those that ended are in the master's reaped time.
    started = [pid for pid in server.pids() if pid not in pids]
    server_cpu = _cpu_seconds(pids + started, reaped_of=master) - server_before
    db_cpu = _cpu_seconds(db_pids) - db_before
    requests = report["requests"]
    errors = report["connect"] + report["read"] + report["write"] + report["timeout"] + report["status"]
    per_request = 1000 / requests if requests else 0.0
    result = Measurement(
        target=target.key,
        phase=phase,
        rps=requests / (report["duration_us"] / 1e6),
        p50_ms=report["p50_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        requests=requests,
        errors=errors,
        server_cpu_ms=server_cpu * per_request,
        db_cpu_ms=db_cpu * per_request,
    )
    if errors:
        problems = [
            line for line in server.log_path.read_text().splitlines() if '"level": "INFO"' not in line
        ]
        print(
            f"  {errors} errors; the server's log (request lines left out) ends with:",
            *problems[-20:],
            sep="\n",
        )
    print(
        f"  {phase:>5} {target.label:<24} {result.rps:7.0f} req/s  p50 {result.p50_ms:6.1f} ms  "
        f"p99 {result.p99_ms:6.1f} ms  server {result.server_cpu_ms:.2f} ms/req  "
        f"db {result.db_cpu_ms:.2f} ms/req  errors {errors}",
        flush=True,
    )
    return result


def check_responses(server: Server, targets: list[Target]) -> None:
    """Every target answers 200, and the bypassed page is the same page as the resolved one."""
    bodies = {}
    for target in targets:
        status, body = _fetch(server.port, target.path, dict(target.headers))
        if status != 200:
            raise RuntimeError(f"{target.label}: HTTP {status}: {body[:500]!r}")
        bodies[target.key] = body
    page = json.loads(bodies["tenant"])
    if len(page["results"]) != 20 or page["count"] != MENTORS:
        raise RuntimeError(f"unexpected directory page: count {page['count']}, {len(page['results'])} rows")
    if bodies["tenant"] != bodies["bypassed"]:
        raise RuntimeError("the bypassed request answered a different page")


def rounds(
    server: Server,
    targets: list[Target],
    phase: str,
    summaries: dict[tuple[str, str], Summary],
    *,
    runs: int,
    seconds: int,
    warmup: int,
    script: Path,
) -> None:
    for target in targets:  # every worker connects, imports lazily and fills its caches
        wrk(server.port, target, seconds=warmup, script=script)
    for index in range(runs):
        # Rotate the order, so no path always runs right after the same other one.
        for target in targets[index % len(targets) :] + targets[: index % len(targets)]:
            result = measure(server, target, phase, seconds=seconds, script=script)
            summaries.setdefault((target.key, phase), Summary(target.key, phase)).runs.append(result)


def profile(server: Server, target: Target, *, seconds: int, script: Path, prefix: Path) -> None:
    """py-spy samples every worker while wrk loads `target`; prints where the time goes."""
    if not shutil.which("py-spy", path=str(Path(sys.executable).parent)) and not shutil.which("py-spy"):
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    raw = prefix.with_suffix(".txt")
    sampler = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(server.process.pid),
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            "500",
            "--duration",
            str(seconds),
            "--output",
            str(raw),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    wrk(server.port, target, seconds=seconds, script=script)
    sampler.wait(timeout=seconds + 60)
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        if any("wait" in frame and "gunicorn" in frame for frame in frames[-3:]) or "select" in frames[-1]:
            continue  # idle in the accept loop
        samples += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count
    lines = [f"{samples} busy samples"]
    lines += ["", "By own samples:"]
    lines += [f"{n / samples:6.1%}  {name}" for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:60]]
    lines += ["", "By total samples:"]
    lines += [
        f"{n / samples:6.1%}  {name}"
        for name, n in sorted(total.items(), key=lambda kv: -kv[1])
        if n / samples >= 0.002
    ]
    top = prefix.parent / f"{prefix.name}-top.txt"
    top.write_text("\n".join(lines) + "\n")
    print(f"Profile: {raw} and {top}", flush=True)


# --- Report ----------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def section(
    summaries: dict[tuple[str, str], Summary],
    labels: dict[str, str],
    *,
    command: str,
    started: str,
    loadavg: str,
    host: dict[str, str],
    counts: dict[str, int],
    seconds: int,
    runs: int,
) -> str:
    def rps(key: str, phase: str) -> float:
        return summaries[(key, phase)].median("rps")

    lines = [
        "## Mentor directory API throughput: tenancy overhead, one institution vs many",
        "",
        "```sh",
        command,
        "```",
        "",
        f"- Date: {started}",
        f"- Machine: {host['nproc']} CPUs (`nproc`), {host['cpu']}; PostgreSQL {host['postgres']}, Redis "
        f"and the load generator (wrk) on the same machine; load average before the run: {loadavg}",
        f"- gunicorn with `deploy/gunicorn.conf.py` ({WORKERS} sync workers), production settings; wrk "
        f"{CONNECTIONS} connections, {WRK_THREADS} threads, {seconds} s per path per round, {runs} rounds "
        "(medians; the paths rotate within each round, after a warm-up per path)",
        "",
        "| Path | Institutions | Requests/s | p50 (ms) | p99 (ms) | Server CPU ms / request "
        "| Postgres CPU ms / request | Errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (key, phase), summary in summaries.items():
        errors = sum(run.errors for run in summary.runs)
        m = summary.median
        lines.append(
            f"| {labels[key]} | {counts[phase]:,} | {m('rps'):,.0f} | {m('p50_ms'):.1f} | {m('p99_ms'):.1f} "
            f"| {m('server_cpu_ms'):.2f} | {m('db_cpu_ms'):.2f} | {errors} |"
        )

    def cpu(key: str, phase: str) -> float:
        # Server and Postgres CPU per request: what the request costs, however busy the machine is.
        return summaries[(key, phase)].median("server_cpu_ms") + summaries[(key, phase)].median("db_cpu_ms")

    a, b, c = rps("tenant", "1"), rps("bypassed", "1"), rps("bare", "1")
    p99 = summaries[("tenant", "1")].median("p99_ms")
    lines += [
        "",
        "| Ratio | Requests/s | By CPU per request | Goal (requests/s) |",
        "|---|---:|---:|---|",
        f"| (a) tenant host / (b) resolution bypassed | {a / b:.1%} "
        f"| {cpu('bypassed', '1') / cpu('tenant', '1'):.1%} "
        f"| ≥ {GOAL_RESOLUTION_RATIO:.0%}: {_verdict(a / b >= GOAL_RESOLUTION_RATIO)} |",
        f"| (a) directory page / (c) bare JSON view | {a / c:.1%} "
        f"| {cpu('bare', '1') / cpu('tenant', '1'):.1%} "
        f"| ≥ {GOAL_BARE_RATIO:.0%}: {_verdict(a / c >= GOAL_BARE_RATIO)} |",
    ]
    if ("tenant", "fleet") in summaries:
        d = rps("tenant", "fleet")
        c_fleet = rps("bare", "fleet")
        lines += [
            f"| (a) with {counts['fleet']:,} institutions / with {counts['1']:,} | {d / a:.1%} "
            f"| {cpu('tenant', '1') / cpu('tenant', 'fleet'):.1%} | within {GOAL_FLEET_DRIFT:.0%}: "
            f"{_verdict(abs(d / a - 1) <= GOAL_FLEET_DRIFT)} |",
            f"| the same, each relative to the bare view of its phase | {(d / c_fleet) / (a / c):.1%} | | "
            "(the machine's drift between the phases taken out) |",
        ]
    lines += [
        "",
        f"(a): {a:,.0f} requests/s, p99 {p99:.1f} ms; goal ≥ {GOAL_RPS:,.0f} requests/s with p99 ≤ "
        f'{GOAL_P99_MS:.0f} ms: {_verdict(a >= GOAL_RPS and p99 <= GOAL_P99_MS)}. "By CPU per request" '
        "is the ratio the throughputs would have if the server and Postgres were the only work on the "
        "machine: it moves far less than requests/s when other work shares the cores.",
    ]
    lines += [
        "",
        "- (a) `GET /api/v1/mentors/` (page 1 of 5, 20 mentors, sorted by rating), `Authorization: Token …` "
        "of a learner, on the institution's host with `X-Forwarded-Proto: https` as the proxy sends it. "
        f"The institution has {MENTORS} approved mentors (bench/directory.py's generator: names, "
        "headlines, 2–8 expertise tags, 1–3 languages, bios, prices, 80 % rated, stored next free slots) "
        "with 2–5 weekly windows each.",
        "- (b) the same request with the bench's bypass header: bench/throughput_server/middleware.py "
        "sets the institution directly instead of resolving the host (no host parsing, no directory "
        "lookup, no locale); every other middleware, the view and the response are the same (checked "
        "byte for byte before measuring).",
        "- (c) `/bench/json`: a tiny `JsonResponse` from `request.tenant`, through the same middleware.",
        "- (d) the same server after bench/fleet.py added the other institutions (real schemas).",
        "- CPU: user + system time per request of the gunicorn processes, and of the Postgres backends "
        "serving them (found by `application_name`), during each measured run.",
    ]
    return "\n".join(lines)


# --- Main ------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per path per round")
    parser.add_argument("--runs", type=int, default=3, help="rounds (each figure is the median)")
    parser.add_argument("--fleet", type=int, default=FLEET, help="institutions for (d); 0 skips it")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 s; 200 institutions for (d)")
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="also sample the workers with py-spy during an extra (a) run: PREFIX.txt (collapsed stacks) "
        "and PREFIX-top.txt (functions by their own and total samples)",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.runs = 3, 3
        if args.fleet == FLEET:
            args.fleet = QUICK_FLEET
    if args.seconds < 1 or args.runs < 1 or args.fleet < 0:
        parser.error("--seconds and --runs must be at least 1, --fleet at least 0")
    if not shutil.which("wrk"):
        parser.error("needs wrk: apt-get install wrk")
    warmup = 1 if args.quick else 2

    command = "DJANGO_SETTINGS_MODULE=config.settings.dev DATABASE_URL=… REDIS_URL=… .venv/bin/python "
    command += "bench/throughput.py"
    if args.quick:
        command += " --quick"
    else:
        if args.seconds != 10:
            command += f" --seconds {args.seconds}"
        if args.runs != 3:
            command += f" --runs {args.runs}"
    if args.fleet not in (FLEET, QUICK_FLEET if args.quick else FLEET):
        command += f" --fleet {args.fleet}"

    subdomain = f"bench-tp-{secrets.token_hex(3)}"
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    work_dir = Path(tempfile.mkdtemp(prefix="throughput-"))
    script = work_dir / "report.lua"
    script.write_text(WRK_REPORT)
    summaries: dict[tuple[str, str], Summary] = {}
    counts: dict[str, int] = {}
    server = None
    try:
        with sigterm_as_interrupt():
            print(f"Provisioning {subdomain} with {MENTORS} mentors …", flush=True)
            institution, token = provision(subdomain)
            host = f"{subdomain}.{settings.PLATFORM_DOMAIN}"
            proxy = (("Host", host), ("X-Forwarded-Proto", "https"))
            auth = (("Authorization", f"Token {token}"),)
            targets = [
                Target("tenant", "(a) tenant host", API_PATH, proxy + auth),
                Target(
                    "bypassed", "(b) resolution bypassed", API_PATH, proxy + auth + ((BYPASS_HEADER, "1"),)
                ),
                Target("bare", "(c) bare JSON", BARE_PATH, proxy),
            ]
            labels = {target.key: target.label for target in targets}
            env = {
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "DJANGO_SETTINGS_MODULE": "bench.throughput_server.settings",
                "PYTHONPATH": str(REPO_ROOT),
                "WEB_CONCURRENCY": str(WORKERS),
                "SECRET_KEY": secrets.token_urlsafe(40),
                "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                # What production settings require (deploy/production.env.example), as this process has them.
                "DATABASE_URL": settings.DATABASE_URL,
                "REDIS_URL": settings.REDIS_URL,
                "PLATFORM_DOMAIN": settings.PLATFORM_DOMAIN,
                "BENCH_FIXED_SCHEMA": institution.schema_name,
                # One learner's token stands for many clients: the per-account and per-institution API
                # limits (shared/core/throttling.py) stay on, counted as usual, but never refuse.
                "API_RATE_USER": "100000000/min",
                "API_RATE_INSTITUTION": "100000000/min",
            }
            connection.close()
            server = start_server(env, work_dir / "gunicorn.log", host)
            check_responses(server, targets)
            counts["1"] = institution_count()
            print(f"Measuring with {counts['1']:,} institution(s) …", flush=True)
            rounds(
                server,
                targets,
                "1",
                summaries,
                runs=args.runs,
                seconds=args.seconds,
                warmup=warmup,
                script=script,
            )
            if args.profile:
                profile(server, targets[0], seconds=args.seconds, script=script, prefix=Path(args.profile))
            if args.fleet:
                from bench.fleet import fleet

                print(f"Creating {args.fleet:,} institutions …", flush=True)
                with fleet(args.fleet, prefix="bench-tp-fleet"):
                    counts["fleet"] = institution_count()
                    connection.close()
                    print(f"Measuring with {counts['fleet']:,} institutions …", flush=True)
                    fleet_targets = [targets[0], targets[2]]
                    rounds(
                        server,
                        fleet_targets,
                        "fleet",
                        summaries,
                        runs=args.runs,
                        seconds=args.seconds,
                        warmup=warmup,
                        script=script,
                    )
            about = machine()
    except KeyboardInterrupt:
        print("\nInterrupted: cleaning up.", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            drop_institution(subdomain)
        finally:
            signal.signal(signal.SIGTERM, previous)
    body = section(
        summaries,
        labels,
        command=command,
        started=started,
        loadavg=loadavg,
        host=about,
        counts=counts,
        seconds=args.seconds,
        runs=args.runs,
    )
    print("\n" + body)
    if not args.no_doc:
        write_section("throughput", body)
        print(f"\nUpdated {DOC.relative_to(REPO_ROOT)}.")
    shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
