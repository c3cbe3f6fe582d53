"""HTTP server choice: the same tiny views served by gunicorn (WSGI), gunicorn + uvicorn (ASGI) and daphne.

Each server runs the project's own entry points (`config.wsgi:application`, `config.asgi:application`)
with production settings (DEBUG off, the institution middleware and the whole middleware stack) and a
throw-away institution; only the URLconf is swapped for two bench views on the institution's host:

- `/bench/json`: a tiny JSON body built from `request.tenant` (no query);
- `/bench/db`: the same plus one query in the institution's schema (a count of its people).

Load comes from ApacheBench (`ab`, `apt-get install apache2-utils`): a fixed concurrency for a fixed
time, one new connection per request (as nginx talks to its upstreams by default), with the
`Host` and `X-Forwarded-Proto` headers the proxy sends.

With `--ws`, also the memory one idle WebSocket costs in daphne and in uvicorn, with and without
per-message compression (bench/echo_asgi.py: the server and Channels, none of our code).

    DJANGO_SETTINGS_MODULE=config.settings.dev DATABASE_URL=… REDIS_URL=… \\
        .venv/bin/python bench/http_servers.py [--seconds 10] [--concurrency 16] [--ws]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import http.client
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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

from bench.common import DOC, drop_institution, machine, sigterm_as_interrupt, write_section  # noqa: E402
from tenants.services import InstitutionSignup, institution_provision  # noqa: E402

START_TIMEOUT = 60.0
PATHS = ("/bench/json", "/bench/db")
PY = sys.executable

# The servers compared: (label, argv after the interpreter; {port} is filled in).
SERVERS: dict[str, tuple[str, list[str]]] = {
    "gunicorn-sync": (
        "gunicorn, WSGI, 2 sync workers",
        ["-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "2", "config.wsgi:application"],
    ),
    "gunicorn-gthread": (
        "gunicorn, WSGI, 2 workers × 4 threads",
        [
            "-m",
            "gunicorn",
            "--bind",
            "127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "config.wsgi:application",
        ],
    ),
    "gunicorn-uvicorn": (
        "gunicorn + uvicorn workers, ASGI, 2 workers",
        [
            "-m",
            "gunicorn",
            "--bind",
            "127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "uvicorn_worker.UvicornWorker",
            "config.asgi:application",
        ],
    ),
    "daphne": (
        "daphne, ASGI, 1 process",
        ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "config.asgi:application"],
    ),
}
OPTIONAL_SERVERS: dict[str, tuple[str, list[str]]] = {
    "gunicorn-asgi": (
        "gunicorn's own ASGI worker, 2 workers",
        [
            "-m",
            "gunicorn",
            "--bind",
            "127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "asgi",
            "config.asgi:application",
        ],
    ),
}

# The servers' settings: production's, with the bench URLconf. Written to a temporary package so that
# nothing in the repository changes.
BENCH_SETTINGS = """
from config.settings.production import *  # noqa: F403

ROOT_URLCONF = "peerlearn_bench_http.urls"
"""
BENCH_URLS = """
from django.http import JsonResponse
from django.urls import path

from tenant_apps.accounts.models import User


def tiny(request):
    return JsonResponse({"institution": request.tenant.slug, "ok": True})


def one_query(request):
    return JsonResponse({"institution": request.tenant.slug, "people": User.objects.count()})


urlpatterns = [path("bench/json", tiny), path("bench/db", one_query)]
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                queue += [int(child) for child in (task / "children").read_text().split()]
    return found


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


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
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _get(port: int, host: str, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host, "X-Forwarded-Proto": "https"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def start(argv: list[str], env: dict[str, str], log_path: Path, ready) -> Server:
    port = _free_port()
    argv = [part.format(port=port) for part in argv]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [PY, *argv], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, process_group=0
        )
    server = Server(process, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while not ready(port):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{' '.join(argv)} did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)
    return server


@dataclass
class Run:
    server: str
    path: str
    requests: int
    failed: int
    non_2xx: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_s: float
    rss_mib: float


def ab(port: int, host: str, path: str, *, seconds: int, concurrency: int, csv_path: Path) -> dict:
    # -t before -n: -t alone caps the run at 50,000 requests.
    argv = ["ab", "-q", "-t", str(seconds), "-n", "100000000", "-c", str(concurrency), "-e", str(csv_path)]
    argv += ["-H", f"Host: {host}", "-H", "X-Forwarded-Proto: https", f"http://127.0.0.1:{port}{path}"]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    def number(label: str) -> float:
        match = re.search(rf"^{label}:\s+([\d.]+)", output, re.MULTILINE)
        return float(match[1]) if match else 0.0

    with csv_path.open() as handle:
        rows = {int(row[0]): float(row[1]) for row in list(csv.reader(handle))[1:]}
    return {
        "requests": int(number("Complete requests")),
        "failed": int(number("Failed requests")),
        "non_2xx": int(number("Non-2xx responses")),
        "rps": number("Requests per second"),
        "p50_ms": rows[50],
        "p99_ms": rows[99],
    }


def measure_http(
    names: list[str], host: str, env: dict[str, str], log_dir: Path, *, seconds: int, concurrency: int
) -> list[Run]:
    runs: list[Run] = []
    catalogue = {**SERVERS, **OPTIONAL_SERVERS}
    for name in names:
        label, argv = catalogue[name]
        print(f"{label} …", flush=True)
        server = start(
            argv,
            env,
            log_dir / f"{name}.log",
            lambda port: _get(port, host, "/bench/json") == 200,
        )
        try:
            for path in PATHS:
                csv_path = log_dir / f"{name}{path.replace('/', '-')}.csv"
                # Warm-up: every worker imports, connects and fills its caches.
                ab(server.port, host, path, seconds=2, concurrency=concurrency, csv_path=csv_path)
                cpu_before = _cpu_seconds(server.pids())
                figures = ab(
                    server.port, host, path, seconds=seconds, concurrency=concurrency, csv_path=csv_path
                )
                pids = server.pids()
                runs.append(
                    Run(
                        server=name,
                        path=path,
                        cpu_s=_cpu_seconds(pids) - cpu_before,
                        rss_mib=_rss_kib(pids) / 1024,
                        **figures,
                    )
                )
                r = runs[-1]
                print(
                    f"  {path}: {r.rps:.0f} req/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
                    f"{r.requests} requests, {r.failed} failed, {r.non_2xx} non-2xx",
                    flush=True,
                )
        finally:
            server.stop()
    return runs


# --- WebSocket memory ---------------------------------------------------------------------------

WS_SERVERS: dict[str, tuple[str, list[str]]] = {
    "daphne": (
        "daphne",
        ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "bench.echo_asgi:application"],
    ),
    "uvicorn-deflate": (
        "uvicorn, per-message compression on (its default)",
        [
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--lifespan",
            "off",
            "--ws",
            "websockets",
            "--ws-per-message-deflate",
            "true",
            "bench.echo_asgi:application",
        ],
    ),
    "uvicorn": (
        "uvicorn, per-message compression off",
        [
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--lifespan",
            "off",
            "--ws",
            "websockets",
            "--ws-per-message-deflate",
            "false",
            "bench.echo_asgi:application",
        ],
    ),
}


@dataclass
class WsRun:
    server: str
    connections: int
    extensions: str
    kib_per_connection: float
    rss_mib: float


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


async def _open_and_echo(port: int, count: int) -> tuple[list, str]:
    from websockets.asyncio.client import connect

    message = '{"type": "offer", "sdp": "' + "v=0 " * 60 + '"}'
    sockets = []
    semaphore = asyncio.Semaphore(50)

    async def one() -> None:
        async with semaphore:
            ws = await connect(f"ws://127.0.0.1:{port}/", open_timeout=30)  # offers permessage-deflate
            await ws.send(message)
            await ws.recv()
            sockets.append(ws)

    await asyncio.gather(*(one() for _ in range(count)))
    offered = sockets[0].response.headers.get("Sec-WebSocket-Extensions", "") if sockets else ""
    return sockets, offered or "none"


async def _measure_ws(server: Server, count: int) -> tuple[float, float, str]:
    warm, _ = await _open_and_echo(server.port, 20)
    for ws in warm:
        await ws.close()
    await asyncio.sleep(1)
    before = _rss_kib(server.pids())
    sockets, extensions = await _open_and_echo(server.port, count)
    await asyncio.sleep(2)
    after = _rss_kib(server.pids())
    for ws in sockets:
        await ws.close()
    return (after - before) / count, after / 1024, extensions


def measure_ws(log_dir: Path, count: int) -> list[WsRun]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    runs = []
    for name, (label, argv) in WS_SERVERS.items():
        print(f"WebSockets: {label} …", flush=True)
        server = start(argv, env, log_dir / f"ws-{name}.log", _port_open)
        try:
            kib, rss, extensions = asyncio.run(_measure_ws(server, count))
        finally:
            server.stop()
        runs.append(WsRun(name, count, extensions, kib, rss))
        print(f"  {kib:.1f} KiB per connection ({extensions})", flush=True)
    return runs


# --- Report -------------------------------------------------------------------------------------


def section(
    runs: list[Run], ws_runs: list[WsRun], *, command: str, started: str, loadavg: str, host: dict
) -> str:
    catalogue = {**SERVERS, **OPTIONAL_SERVERS}
    lines = [
        "## HTTP servers: gunicorn (WSGI) vs. gunicorn + uvicorn (ASGI) vs. daphne",
        "",
        "```sh",
        command,
        "```",
        "",
        f"- Date: {started}",
        f"- Machine: {host['nproc']} CPUs (`nproc`), {host['cpu']}; PostgreSQL {host['postgres']} and "
        "Redis on the same machine, and the load generator (`ab`) too; load average before the run: "
        f"{loadavg}",
        "",
        "| Server | Path | Requests/s | p50 (ms) | p99 (ms) | Requests | Errors | Server CPU ms / request "
        "| Server RSS (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        errors = r.failed + r.non_2xx
        per_request = r.cpu_s * 1000 / r.requests if r.requests else 0.0
        lines.append(
            f"| {catalogue[r.server][0]} | `{r.path}` | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | "
            f"{r.requests:,} | {errors} | {per_request:.2f} | {r.rss_mib:.0f} |"
        )
    lines += [
        "",
        "- Every server runs `config.wsgi:application` or `config.asgi:application` with production "
        "settings (DEBUG off) and the full middleware stack; only `ROOT_URLCONF` is replaced by two "
        "views: `/bench/json` answers a tiny JSON body from `request.tenant`, `/bench/db` adds one "
        "`COUNT` in the institution's schema. Requests go to a throw-away institution's host "
        "(provisioned at the start, dropped at the end) with `X-Forwarded-Proto: https`, as the proxy "
        "sends them.",
        "- `ab`: a fixed concurrency for a fixed time, a new connection per request (nginx's default "
        "towards its upstreams), after a 2-second warm-up per path. p50/p99 from its percentile "
        "table. Server CPU: user + system time of the server's processes (master and workers) during "
        "the measured run, divided by the requests served.",
    ]
    if ws_runs:
        labels = {name: label for name, (label, _) in WS_SERVERS.items()}
        lines += [
            "",
            f"### WebSocket memory: {ws_runs[0].connections:,} idle connections",
            "",
            "| Server | Negotiated extensions | KiB / connection | Server RSS with them open (MiB) |",
            "|---|---|---:|---:|",
        ]
        for w in ws_runs:
            lines.append(
                f"| {labels[w.server]} | `{w.extensions}` | {w.kib_per_connection:.1f} | {w.rss_mib:.0f} |"
            )
        lines += [
            "",
            "- bench/echo_asgi.py (a bare Channels echo consumer: the server's own cost, none of ours). "
            "The client (`websockets`) offers `permessage-deflate` as browsers do; each connection sends "
            "one ~250-byte frame and reads its echo, then stays open. RSS growth of the server process "
            "after 20 warm-up connections, divided by the connections.",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per server and path")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (ab -c)")
    parser.add_argument(
        "--server",
        action="append",
        choices=[*SERVERS, *OPTIONAL_SERVERS],
        help=f"server(s) to measure (repeatable; default: {', '.join(SERVERS)})",
    )
    parser.add_argument("--ws", action="store_true", help="also measure WebSocket memory per connection")
    parser.add_argument("--ws-connections", type=int, default=1000)
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    args = parser.parse_args()
    if not shutil.which("ab"):
        parser.error("needs ApacheBench: apt-get install apache2-utils")
    names = args.server or list(SERVERS)
    command = "DJANGO_SETTINGS_MODULE=config.settings.dev DATABASE_URL=… REDIS_URL=… .venv/bin/python "
    command += "bench/http_servers.py"
    if args.seconds != 10:
        command += f" --seconds {args.seconds}"
    if args.concurrency != 16:
        command += f" --concurrency {args.concurrency}"
    command += "".join(f" --server {name}" for name in args.server or [])
    if args.ws:
        command += " --ws"
        if args.ws_connections != 1000:
            command += f" --ws-connections {args.ws_connections}"

    subdomain = f"bench-http-{secrets.token_hex(3)}"
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    log_dir = Path(tempfile.mkdtemp(prefix="http-servers-"))
    package = log_dir / "peerlearn_bench_http"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(BENCH_SETTINGS)
    (package / "urls.py").write_text(BENCH_URLS)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(log_dir), str(REPO_ROOT)]),
        "DJANGO_SETTINGS_MODULE": "peerlearn_bench_http.settings",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        # What production settings require (deploy/production.env.example), as this process has them.
        "DATABASE_URL": settings.DATABASE_URL,
        "REDIS_URL": settings.REDIS_URL,
        "PLATFORM_DOMAIN": settings.PLATFORM_DOMAIN,
    }
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.ws_connections * 2 + 256)), hard))
    try:
        with sigterm_as_interrupt():
            with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
                institution_provision(
                    signup=InstitutionSignup(
                        name="Bench HTTP",
                        subdomain=subdomain,
                        country="GB",
                        currency="GBP",
                        timezone="Europe/London",
                        admin_full_name="Bench Admin",
                        admin_email=f"admin@{subdomain}.example",
                        admin_password=secrets.token_urlsafe(16),
                    )
                )
            connection.close()
            host = f"{subdomain}.{settings.PLATFORM_DOMAIN}"
            runs = measure_http(names, host, env, log_dir, seconds=args.seconds, concurrency=args.concurrency)
            ws_runs = measure_ws(log_dir, args.ws_connections) if args.ws else []
            about = machine()
    except KeyboardInterrupt:
        print("\nInterrupted: cleaning up.", file=sys.stderr)
        return 130
    finally:
        drop_institution(subdomain)
    body = section(runs, ws_runs, command=command, started=started, loadavg=loadavg, host=about)
    print("\n" + body)
    if not args.no_doc:
        write_section("http-servers", body)
        print(f"\nUpdated {DOC.relative_to(REPO_ROOT)}.")
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
