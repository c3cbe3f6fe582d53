"""Live-room relay benchmark: 1,000 WebSockets in rooms of two across 10 institutions, one daphne.

Every connection sends one `offer` a second to the other peer of its room, stamped with the
client's clock; the peer's client measures how long the server took to relay it. A bare
Channels echo consumer (bench/echo_asgi.py) in its own daphne is the baseline. Each channel-layer
variant gets a fresh daphne process; the institutions, people, bookings and sessions are made
once and dropped at the end (also on error or Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import gc
import http.client
import json
import os
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import import_module
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402
import redis  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from bench.common import DOC, drop_institution, machine, sigterm_as_interrupt, write_section  # noqa: E402
from tenant_apps.accounts.models import User  # noqa: E402
from tenant_apps.sessions.models import Attendance, Booking, MentorProfile  # noqa: E402
from tenants.models import Institution  # noqa: E402
from tenants.services import InstitutionSignup, institution_provision  # noqa: E402

DAPHNE_START_TIMEOUT = 30.0
CONNECT_CONCURRENCY = 20  # rooms being opened at once
OPEN_TIMEOUT = 30.0
DRAIN_TIMEOUT = 10.0  # how long to wait for messages in flight once sending stops
GOAL_P99_MS = 20.0
GOAL_KIB_PER_CONNECTION = 50.0

# The channel-layer variants. "pubsub" and "core" are what config/settings/base.py builds for
# CHANNEL_LAYER=<name>; "core-stock" is the list-based layer with redis-py's defaults (what the
# issue reports losing messages); "core-capacity" runs only when asked for with --layer.
LAYERS = ("pubsub", "core", "core-stock")
OPTIONAL_LAYERS = ("core-capacity",)
# What each variant puts in the server's environment: CHANNEL_LAYER picks what the settings build,
# BENCH_LAYER_CONFIG is merged into that layer's CONFIG, BENCH_CHANNEL_LAYERS replaces CHANNEL_LAYERS.
VARIANT_ENV = {
    "pubsub": lambda: {"CHANNEL_LAYER": "pubsub"},
    "core": lambda: {"CHANNEL_LAYER": "core"},
    # Room for 1,000 queued messages per channel instead of 100 (all the sockets of one process
    # share one queue in Redis).
    "core-capacity": lambda: {"CHANNEL_LAYER": "core", "BENCH_LAYER_CONFIG": json.dumps({"capacity": 1000})},
    "core-stock": lambda: {
        "BENCH_CHANNEL_LAYERS": json.dumps(
            {
                "default": {
                    "BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {"hosts": [settings.REDIS_URL]},
                }
            }
        )
    },
}
# Experiments (--server-patch): code run in the server process before daphne starts. Each one undoes
# a change the project made for this benchmark's figures, so that its effect can be measured again
# (docs/live.md). Not used by default.
SERVER_PATCHES = {
    # Channels' own dispatch: a hop to the sync thread (close_old_connections) before every frame
    # and every layer message, instead of tenants.websocket.DirectDispatchMixin's.
    "stock-dispatch": ("import tenants.websocket as stack\ndel stack.DirectDispatchMixin.dispatch\n"),
    # Python's default garbage-collection thresholds instead of settings.ASGI_GC_THRESHOLD.
    "stock-gc": "settings.ASGI_GC_THRESHOLD = None\n",
    # Let every socket keep its own Django cache clients (tenants.websocket._forget_caches).
    "cache-per-socket": ("import tenants.websocket as stack\nstack._forget_caches = lambda: None\n"),
}
LABELS = {
    "echo": "Baseline: bare Channels echo (bench/echo_asgi.py)",
    "pubsub": "Relay, `RedisPubSubChannelLayer` (`CHANNEL_LAYER=pubsub`)",
    "core": "Relay, `RedisChannelLayer` with host settings (`CHANNEL_LAYER=core`)",
    "core-stock": "Relay, `RedisChannelLayer` with redis-py defaults",
    "core-capacity": "Relay, `RedisChannelLayer` with host settings and `capacity` 1,000",
}

# Runs daphne in a process of its own with DEBUG off and the variant's layer, prints the layer in use
# for the report, and logs garbage collections that paused the server for 2 ms or more.
SERVER = """
import gc, json, os, sys, time
from daphne.cli import CommandLineInterface
if os.environ.get("DJANGO_SETTINGS_MODULE"):
    from django.conf import settings
    settings.DEBUG = False  # as in production: DEBUG keeps the last 9,000 queries in memory
    override = os.environ.get("BENCH_CHANNEL_LAYERS")
    if override:
        settings.CHANNEL_LAYERS = json.loads(override)
    extra = json.loads(os.environ.get("BENCH_LAYER_CONFIG", "{}"))
    settings.CHANNEL_LAYERS["default"]["CONFIG"].update(extra)
    layer = settings.CHANNEL_LAYERS["default"]
    hosts = [
        {k: v for k, v in host.items() if k != "address"} if isinstance(host, dict) else {}
        for host in layer.get("CONFIG", {}).get("hosts", [])
    ]
    config = {k: v for k, v in layer.get("CONFIG", {}).items() if k != "hosts"}
    reported = {"backend": layer["BACKEND"], "hosts": hosts, "config": config}
    print("BENCH-LAYER " + json.dumps(reported), flush=True)
started = [0.0]
def gc_pause(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        pause = (time.perf_counter() - started[0]) * 1000
        if pause >= 2 or info["generation"] == 2:  # long pauses only: printing costs too
            print(f"BENCH-GC {info['generation']} {pause:.1f}", flush=True)
gc.callbacks.append(gc_pause)
exec(os.environ.get("BENCH_SERVER_CODE", ""))
CommandLineInterface().run(sys.argv[1:])
"""


# --- The scene: institutions, people, bookings, sessions ----------------------------------------


@dataclass
class Endpoint:
    """One WebSocket to open: whose, to which room."""

    index: int
    room: int
    host: str
    path: str
    cookie: str


def _session_key(user: User) -> str:
    """A signed-in session for `user`, as django.contrib.auth.login() would store it."""
    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def build_scene(*, token: str, institutions: int, connections: int, made: list[str]) -> list[Endpoint]:
    """`connections` endpoints: rooms of a mentor and a learner, dealt round-robin to institutions."""
    rooms = connections // 2
    per_institution = [len(range(i, rooms, institutions)) for i in range(institutions)]
    password = make_password(secrets.token_urlsafe(16))  # hashed once for everyone
    now = timezone.now().replace(second=0, microsecond=0)
    starts_at, ends_at = now - timedelta(minutes=1), now + timedelta(minutes=90)
    endpoints: list[Endpoint] = []
    room_number = 0
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        for i, count in enumerate(per_institution):
            if count == 0:
                continue
            subdomain = f"bench-ws{i}-{token}"
            made.append(subdomain)
            institution = institution_provision(
                signup=InstitutionSignup(
                    name=f"Bench live {i}",
                    subdomain=subdomain,
                    country="GB",
                    currency="GBP",
                    timezone="Europe/London",
                    admin_full_name="Bench Admin",
                    admin_email=f"admin@{subdomain}.example",
                    admin_password=secrets.token_urlsafe(16),
                )
            ).institution
            host = f"{subdomain}.{settings.PLATFORM_DOMAIN}"
            with tenant_context(institution):
                mentors = User.objects.bulk_create(
                    User(
                        email=f"mentor{n}@{subdomain}.example",
                        full_name=f"Mentor {n}",
                        role=User.Role.MENTOR,
                        mentor_status=User.MentorStatus.APPROVED,
                        password=password,
                    )
                    for n in range(count)
                )
                learners = User.objects.bulk_create(
                    User(
                        email=f"learner{n}@{subdomain}.example",
                        full_name=f"Learner {n}",
                        role=User.Role.LEARNER,
                        password=password,
                    )
                    for n in range(count)
                )
                profiles = MentorProfile.objects.bulk_create(
                    MentorProfile(user=user, session_lengths=[60], minimum_notice_minutes=0)
                    for user in mentors
                )
                bookings = Booking.objects.bulk_create(
                    Booking(
                        mentor=profile,
                        learner=learner,
                        starts_at=starts_at,
                        ends_at=ends_at,
                        blocked=DateTimeTZRange(starts_at, ends_at),
                        status=Booking.Status.CONFIRMED,
                        currency="GBP",
                    )
                    for profile, learner in zip(profiles, learners, strict=True)
                )
                for mentor, learner, booking in zip(mentors, learners, bookings, strict=True):
                    path = f"/ws/sessions/{booking.pk}/"
                    for user in (mentor, learner):
                        endpoints.append(
                            Endpoint(len(endpoints), room_number, host, path, _session_key(user))
                        )
                    room_number += 1
    return endpoints


def forget_redis_keys(token: str) -> int:
    """What the runs left in Redis under the throw-away schemas (cached sessions, the rooms' peer
    registries, the list-based layer's groups): every such key carries the schema name."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    pattern = f"*bench_ws*_{token}*"  # the schemas of build_scene's bench-ws<n>-<token> subdomains
    return sum(client.unlink(key) for key in client.scan_iter(match=pattern, count=1000))


# --- The server -------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def layer(self) -> dict | None:
        for line in self.log().splitlines():
            if line.startswith("BENCH-LAYER "):
                return json.loads(line.removeprefix("BENCH-LAYER "))
        return None

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def gc_pauses(self, start: int, end: int) -> list[tuple[int, float]]:
        """(generation, ms) of the garbage collections of 2 ms or more (and every full one) that
        the server logged between two offsets of its log."""
        with self.log_path.open("rb") as log:
            log.seek(start)
            text = log.read(end - start).decode(errors="replace")
        return [
            (int(m[1]), float(m[2])) for m in re.finditer(r"^BENCH-GC (\d) (\d+\.\d)$", text, re.MULTILINE)
        ]

    def errors(self, until: int) -> collections.Counter:
        """The exceptions of the tracebacks in the server's log (up to an offset), by type."""
        text = self.log_path.read_bytes()[:until].decode(errors="replace")
        names = re.findall(r"^([a-zA-Z_][\w.]*(?:Error|Exception|Full|Timeout))\b", text, re.MULTILINE)
        return collections.Counter(names)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int, *, http_check: bool) -> bool:
    if not http_check:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": settings.PLATFORM_DOMAIN})
        response = conn.getresponse()
        response.read()
        return response.status < 500
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def start_server(variant: str, log_dir: Path, patches: list[str]) -> Server:
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("BENCH_CHANNEL_LAYERS", "BENCH_LAYER_CONFIG", "BENCH_SERVER_CODE", "CHANNEL_LAYER"):
        env.pop(name, None)
    if variant == "echo":
        env.pop("DJANGO_SETTINGS_MODULE", None)
        app = "bench.echo_asgi:application"
    else:
        app = "config.asgi:application"
        env["SITE_PORT"] = str(port)
        env.update(VARIANT_ENV[variant]())
        env["BENCH_SERVER_CODE"] = "".join(SERVER_PATCHES[name] for name in patches)
    log_path = log_dir / f"daphne-{variant}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER, "-b", "127.0.0.1", "-p", str(port), app],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log_path)
    deadline = time.monotonic() + DAPHNE_START_TIMEOUT
    while not _listening(port, http_check=variant != "echo"):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"daphne ({variant}) did not start:\n{server.log()[-3000:]}")
        time.sleep(0.2)
    return server


# --- The clients --------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies_ns: list[int] = field(default_factory=list)
    received: set[tuple[int, int]] = field(default_factory=set)
    duplicates: int = 0
    misrouted: int = 0
    sent: int = 0
    send_failures: int = 0
    send_lag_s: list[float] = field(default_factory=list)
    error_frames: dict[str, int] = field(default_factory=dict)
    closed_early: int = 0


@dataclass
class Client:
    endpoint: Endpoint
    echo: bool
    tally: Tally
    ws: object = None
    peer_id: str | None = None
    other_peer_id: str | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task | None = None
    expected_sender: int = -1  # the endpoint index whose messages this connection receives
    closing: bool = False
    first: bool = False  # opens first in its room

    def uri(self, port: int) -> str:
        return f"ws://{self.endpoint.host}:{port}{self.endpoint.path}"

    async def open(self, port: int) -> None:
        from websockets.asyncio.client import connect

        host = self.endpoint.host
        self.ws = await connect(
            self.uri(port),
            host="127.0.0.1",
            port=port,
            origin=f"http://{host}:{port}",
            additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={self.endpoint.cookie}"},
            proxy=None,
            compression=None,
            open_timeout=OPEN_TIMEOUT,
            max_queue=None,
        )
        self.reader = asyncio.create_task(self.read())
        if self.echo:
            self.ready.set()

    async def read(self) -> None:
        tally = self.tally
        try:
            async for raw in self.ws:
                arrived = time.perf_counter_ns()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "offer":
                    stamp, seq, sender = (int(part[2:]) for part in message["sdp"].split())
                    if sender != self.expected_sender or (
                        not self.echo and message.get("from") != self.other_peer_id
                    ):
                        tally.misrouted += 1
                        continue
                    key = (sender, seq)
                    if key in tally.received:
                        tally.duplicates += 1
                        continue
                    tally.received.add(key)
                    tally.latencies_ns.append(arrived - stamp)
                elif kind == "joined":
                    self.peer_id = message["peer_id"]
                    # The second of a room takes the newest peer that is not themselves; the first
                    # waits for `peer.joined` (the list may still hold peers of a process that died
                    # until they go stale).
                    you = message.get("you", {}).get("user_id")
                    others = [p for p in message.get("peers", []) if p.get("user_id") != you]
                    if not self.first and others:
                        self.other_peer_id = max(others, key=lambda p: p.get("seq", 0))["peer_id"]
                        self.ready.set()
                elif kind == "peer.joined" and self.first:
                    self.other_peer_id = message["peer"]["peer_id"]
                    self.ready.set()
                elif kind == "error":
                    code = str(message.get("code"))
                    tally.error_frames[code] = tally.error_frames.get(code, 0) + 1
        except Exception:
            pass
        if not self.closing:
            tally.closed_early += 1

    async def send_loop(self, *, start: float, offset: float, seconds: int) -> None:
        loop = asyncio.get_running_loop()
        tally = self.tally
        index = self.endpoint.index
        to = "echo" if self.echo else self.other_peer_id
        for seq in range(seconds):
            due = start + offset + seq
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tally.send_lag_s.append(loop.time() - due)
            frame = json.dumps(
                {"type": "offer", "to": to, "sdp": f"t={time.perf_counter_ns()} s={seq} c={index}"}
            )
            try:
                await self.ws.send(frame)
            except Exception:
                tally.send_failures += 1
                continue
            tally.sent += 1

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), timeout=10)
        if self.reader is not None:
            self.reader.cancel()


def pair_up(clients: list[Client], echo: bool) -> list[list[Client]]:
    """Rooms (lists of the clients in them), and whom each client expects messages from."""
    if echo:
        for client in clients:
            client.expected_sender = client.endpoint.index
        return [[client] for client in clients]
    rooms: dict[int, list[Client]] = {}
    for client in clients:
        rooms.setdefault(client.endpoint.room, []).append(client)
    for first, second in rooms.values():
        first.expected_sender, second.expected_sender = second.endpoint.index, first.endpoint.index
        first.first = True
    return list(rooms.values())


async def open_room(room: list[Client], port: int, semaphore: asyncio.Semaphore) -> None:
    async with semaphore:
        for client in room:  # the mentor first, then the learner sees them in `peers`
            await client.open(port)
        await asyncio.wait_for(
            asyncio.gather(*(client.ready.wait() for client in room)), timeout=OPEN_TIMEOUT
        )


@dataclass
class Result:
    variant: str
    connections: int
    seconds: int
    tally: Tally
    rss_before_kib: int
    rss_connected_kib: int
    rss_end_kib: int
    connect_seconds: float
    server_cpu_percent: float
    client_cpu_percent: float
    redis_cpu_percent: float
    machine_busy_percent: float
    gc_pauses: list[tuple[int, float]]
    server_errors: collections.Counter
    layer: dict | None
    failure: str = ""

    @property
    def send_lag_p99_ms(self) -> float:
        lag = sorted(self.tally.send_lag_s)
        return lag[int(0.99 * (len(lag) - 1))] * 1000 if lag else float("nan")

    @property
    def error_summary(self) -> str:
        return ", ".join(f"{count:,} × `{name}`" for name, count in self.server_errors.most_common(4))

    @property
    def gc_summary(self) -> str:
        full = [ms for generation, ms in self.gc_pauses if generation == 2]
        longest = max((ms for _, ms in self.gc_pauses), default=0.0)
        return f"{len(self.gc_pauses)} ≥ 2 ms ({len(full)} full), longest {longest:.0f} ms"

    @property
    def lost(self) -> int:
        return self.tally.sent - len(self.tally.received)

    def percentile_ms(self, q: float) -> float:
        values = sorted(self.tally.latencies_ns)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))] / 1e6

    @property
    def max_ms(self) -> float:
        return max(self.tally.latencies_ns, default=0) / 1e6

    @property
    def kib_per_connection(self) -> float:
        return (self.rss_end_kib - self.rss_before_kib) / self.connections

    @property
    def kib_per_connection_idle(self) -> float:
        return (self.rss_connected_kib - self.rss_before_kib) / self.connections


def redis_cpu_seconds() -> float:
    info = redis.Redis.from_url(settings.REDIS_URL).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine used so far (every core, from /proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def warm_up(server: Server, endpoints: list[Endpoint], echo: bool) -> None:
    """One room (or one echo socket) opened, used and closed: lazy imports and pools are loaded
    before the baseline memory is read."""
    tally = Tally()
    clients = [Client(endpoint, echo, tally) for endpoint in (endpoints[:1] if echo else endpoints[:2])]
    rooms = pair_up(clients, echo)
    await open_room(rooms[0], server.port, asyncio.Semaphore(1))
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(client.send_loop(start=loop.time(), offset=0, seconds=1) for client in clients))
    deadline = loop.time() + 5
    while len(tally.received) < tally.sent and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.gather(*(client.close() for client in clients))
    if len(tally.received) < tally.sent:
        raise RuntimeError(
            f"warm-up: {tally.sent} sent, {len(tally.received)} came back\n{server.log()[-3000:]}"
        )


def open_attendances(subdomains: list[str]) -> int:
    """Attendance rows not yet closed: the server has not finished every socket's disconnect."""
    try:
        count = 0
        for institution in Institution.objects.filter(slug__in=subdomains):
            with tenant_context(institution):
                count += Attendance.objects.filter(left_at__isnull=True).count()
        return count
    finally:
        connection.close()


async def wait_for_disconnects(subdomains: list[str], timeout: float) -> None:
    """Stopping daphne kills sockets still being handled; a room would then keep ghosts in Redis
    until they go stale, and the next variant would meet them."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(open_attendances, subdomains) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)


async def measure(
    variant: str,
    endpoints: list[Endpoint],
    seconds: int,
    log_dir: Path,
    subdomains: list[str],
    patches: list[str],
) -> Result:
    echo = variant == "echo"
    print(f"[{variant}] starting daphne …", flush=True)
    server = start_server(variant, log_dir, patches)
    tally = Tally()
    clients = [Client(endpoint, echo, tally) for endpoint in endpoints]
    failure = ""
    rss_connected = rss_end = 0
    connect_seconds = server_cpu = client_cpu = redis_cpu = machine_busy = 0.0
    gc_pauses: list[tuple[int, float]] = []
    try:
        await warm_up(server, endpoints, echo)
        gc.collect()
        await asyncio.sleep(1)
        rss_before = server.rss_kib()
        rooms = pair_up(clients, echo)
        print(f"[{variant}] opening {len(clients)} connections …", flush=True)
        began = time.monotonic()
        semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY * (2 if echo else 1))
        await asyncio.gather(*(open_room(room, server.port, semaphore) for room in rooms))
        connect_seconds = time.monotonic() - began
        await asyncio.sleep(1)
        rss_connected = server.rss_kib()
        print(
            f"[{variant}] {len(clients)} open in {connect_seconds:.1f} s; sending for {seconds} s …",
            flush=True,
        )
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.5
        cpu_server_0, cpu_client_0, wall_0 = server.cpu_seconds(), time.process_time(), time.monotonic()
        cpu_redis_0, busy_0 = redis_cpu_seconds(), machine_busy_seconds()
        log_0 = server.log_size()
        await asyncio.gather(
            *(
                client.send_loop(start=start, offset=i / len(clients), seconds=seconds)
                for i, client in enumerate(clients)
            )
        )
        deadline = loop.time() + DRAIN_TIMEOUT
        while len(tally.received) < tally.sent and loop.time() < deadline:
            await asyncio.sleep(0.05)
        wall = time.monotonic() - wall_0
        server_cpu = 100 * (server.cpu_seconds() - cpu_server_0) / wall
        client_cpu = 100 * (time.process_time() - cpu_client_0) / wall
        redis_cpu = 100 * (redis_cpu_seconds() - cpu_redis_0) / wall
        machine_busy = 100 * (machine_busy_seconds() - busy_0) / wall
        rss_end = server.rss_kib()
        gc_pauses = server.gc_pauses(log_0, server.log_size())
    except Exception as error:
        failure = f"{type(error).__name__}: {error}".strip()[:500]
        print(f"[{variant}] failed: {failure}", file=sys.stderr, flush=True)
        rss_before = rss_before if "rss_before" in locals() else 0
    finally:
        await asyncio.gather(*(client.close() for client in clients))
        if not echo:
            await wait_for_disconnects(subdomains, timeout=60)
        layer = server.layer()
        # Errors are counted up to here: stopping daphne cancels the consumers still unsubscribing
        # from Redis, and channels_redis logs each cancellation; that is the benchmark's doing.
        errors = server.errors(until=server.log_size())
        server.stop()
    result = Result(
        variant=variant,
        connections=len(clients),
        seconds=seconds,
        tally=tally,
        rss_before_kib=rss_before,
        rss_connected_kib=rss_connected,
        rss_end_kib=rss_end,
        connect_seconds=connect_seconds,
        server_cpu_percent=server_cpu,
        client_cpu_percent=client_cpu,
        redis_cpu_percent=redis_cpu,
        machine_busy_percent=machine_busy,
        gc_pauses=gc_pauses,
        server_errors=errors,
        layer=layer,
        failure=failure,
    )
    print(f"[{variant}] {summary_line(result)}", flush=True)
    return result


# --- Report ----------------------------------------------------------------------------------


def summary_line(r: Result) -> str:
    t = r.tally
    return (
        f"p50 {r.percentile_ms(0.50):.2f} ms, p99 {r.percentile_ms(0.99):.2f} ms, max {r.max_ms:.1f} ms; "
        f"sent {t.sent}, received {len(t.received)}, lost {r.lost}, duplicates {t.duplicates}, "
        f"misrouted {t.misrouted}, send failures {t.send_failures}, sockets dropped {t.closed_early}, "
        f"error frames {t.error_frames or 0}; server {r.kib_per_connection:.1f} KiB/connection "
        f"({r.kib_per_connection_idle:.1f} idle); CPU daphne {r.server_cpu_percent:.0f} %, "
        f"Redis {r.redis_cpu_percent:.0f} %, client {r.client_cpu_percent:.0f} %, "
        f"machine {r.machine_busy_percent:.0f} %; client send lag p99 {r.send_lag_p99_ms:.1f} ms; "
        f"GC {r.gc_summary}; server errors {r.error_summary or 0}"
        + (f"; FAILED: {r.failure}" if r.failure else "")
    )


def latency_table(results: list[Result]) -> str:
    lines = [
        "| Variant | p50 (ms) | p99 (ms) | Max (ms) | Sent | Received | Lost | Error frames |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        t = r.tally
        lost = f"**{r.lost:,}**" if r.lost else "0"
        frames = ", ".join(f"{count:,} `{code}`" for code, count in t.error_frames.items()) or "—"
        if t.closed_early:
            frames += f"; {t.closed_early} sockets dropped by the server"
        if r.failure:
            frames += f"; run failed: {r.failure}"
        lines.append(
            f"| {LABELS[r.variant]} | {r.percentile_ms(0.5):.2f} | {r.percentile_ms(0.99):.2f} "
            f"| {r.max_ms:.1f} | {t.sent:,} | {len(t.received):,} | {lost} | {frames} |"
        )
    return "\n".join(lines)


def resource_table(results: list[Result]) -> str:
    lines = [
        "| Variant | Server KiB / connection (idle) | daphne CPU | Redis CPU | Client CPU | Machine busy "
        "| Client send lag p99 | daphne GC pauses while sending |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {LABELS[r.variant]} | {r.kib_per_connection:.1f} ({r.kib_per_connection_idle:.1f}) "
            f"| {r.server_cpu_percent:.0f} % | {r.redis_cpu_percent:.0f} % | {r.client_cpu_percent:.0f} % "
            f"| {r.machine_busy_percent:.0f} % | {r.send_lag_p99_ms:.1f} ms | {r.gc_summary} |"
        )
    return "\n".join(lines)


def layer_lines(results: list[Result]) -> str:
    lines = []
    for r in results:
        if r.layer is None:
            continue
        hosts = ", ".join(json.dumps(host) for host in r.layer["hosts"]) or "{}"
        config = f", other CONFIG `{json.dumps(r.layer['config'])}`" if r.layer.get("config") else ""
        lines.append(
            f"  - {r.variant}: `{r.layer['backend']}`, host settings besides the address `{hosts}`{config}"
        )
    return "\n".join(lines)


def error_lines(results: list[Result]) -> str:
    lines = [f"  - {r.variant}: {r.error_summary}" for r in results if r.error_summary]
    return "\n".join(lines) or "  - none"


def verdict(results: list[Result]) -> str:
    parts = []
    for r in results:
        if r.variant == "echo":
            continue
        misses = []
        if r.failure or r.tally.closed_early:
            misses.append("run failed or sockets dropped")
        if r.percentile_ms(0.99) > GOAL_P99_MS:
            misses.append(f"p99 {r.percentile_ms(0.99):.1f} ms")
        if r.lost:
            misses.append(f"{r.lost:,} lost")
        if r.kib_per_connection > GOAL_KIB_PER_CONNECTION:
            misses.append(f"{r.kib_per_connection:.0f} KiB per connection")
        parts.append(f"{r.variant} — " + ("met" if not misses else "**not met** (" + ", ".join(misses) + ")"))
    return "; ".join(parts)


def redis_version() -> str:
    return redis.Redis.from_url(settings.REDIS_URL).info("server")["redis_version"]


def section(
    command: str, results: list[Result], host: dict[str, str], loadavg: str, patches: list[str]
) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    connections = results[0].connections
    seconds = results[0].seconds
    return f"""## Live-room relay: {connections:,} WebSockets in rooms of two, one daphne process

```sh
{command}
```

- Date: {now}
- Machine: {host["nproc"]} CPUs (`nproc`), {host["cpu"]}; PostgreSQL {host["postgres"]} and Redis
  {redis_version()} on the same machine; load average before the run: {loadavg}
- Layers as each server process reported them:
{layer_lines(results)}

{latency_table(results)}

{resource_table(results)}

Goals — relay p99 ≤ {GOAL_P99_MS:.0f} ms at 1,000 connections, nothing lost over 60 s,
≤ {GOAL_KIB_PER_CONNECTION:.0f} KiB of server memory per connection: {verdict(results)}.

Errors in the server logs (exception types, counted):
{error_lines(results)}

- {connections:,} connections = {connections // 2:,} rooms of a mentor and a learner whose confirmed booking
  started a minute ago, dealt round-robin over the throw-away institutions
  (`tenants.services.institution_provision`; dropped at the end with their Redis keys, also on
  error or Ctrl-C). Sessions are stored with the session engine as `login()` would; each socket
  passes the whole stack (origin check, institution from `Host`, session lookup in its schema,
  `room_join`, attendance, chat history).
- Every connection sends one `offer` a second to the other peer of its room, the sends spread evenly
  over each second ({connections:,} messages/s in all) for {seconds} s. The `sdp` carries the sender's
  `perf_counter_ns`; the receiving client (the same process, the same clock) takes the difference on
  arrival. Lost = sent − received after a {DRAIN_TIMEOUT:.0f} s drain. The echo baseline is the same load
  against a bare `AsyncWebsocketConsumer` that sends each frame back (one socket instead of two).
- Server memory per connection = (daphne's VmRSS after the sending phase, every socket still open −
  VmRSS before the first of them opened) / connections; "idle" takes the VmRSS right after they all
  opened. One room (one echo socket) is opened, used and closed before the first reading, so lazy
  imports and pools are not counted.
- CPU = user + system time over the sending phase in % of one core: daphne's, Redis' (`INFO cpu`) and
  the load generator's. "Machine busy" is every process on the machine (`/proc/stat`, out of
  {int(host["nproc"]) * 100} %); the kernel samples it at ticks, so it reads low for bursty loads: it is
  there to show whether anything else (another test run) competed for the cores.
  **The load generator shares the {host["nproc"]} cores with daphne, Redis and Postgres**: its own event-loop
  delay (client send lag = how late the sends left) is inside every figure.
- Each variant runs in a fresh daphne (`config.asgi:application`, settings
  `{os.environ["DJANGO_SETTINGS_MODULE"]}` with `DEBUG` off as in production) on one event loop;
  `CHANNEL_LAYER` selects the layer the settings build. The stock variant replaces `CHANNEL_LAYERS`
  with `{{"hosts": [REDIS_URL]}}`, i.e. redis-py 8's 5 s `socket_timeout` and its 100-connection
  async pool. GC pauses are the server's own garbage collections of 2 ms or more during the sending
  phase (`gc.callbacks`). The decision these figures support is in `docs/live.md`.{patch_note(patches)}
"""


def patch_note(patches: list[str]) -> str:
    if not patches:
        return ""
    names = ", ".join(f"`{name}`" for name in patches)
    return (
        f"\n- **Experiment**: the relay servers ran with {names} from `SERVER_PATCHES` in bench/ws_relay.py."
    )


# --- Main -------------------------------------------------------------------------------------


@contextmanager
def more_open_files(wanted: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted)) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        print(f"Warning: only {target} open files allowed (hard limit); {wanted} wanted.", file=sys.stderr)
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--connections", type=int, default=1000, help="WebSockets, an even number (default 1000)"
    )
    parser.add_argument("--seconds", type=int, default=60, help="sending phase per variant (default 60)")
    parser.add_argument("--institutions", type=int, default=10, help="institutions the rooms are spread over")
    parser.add_argument(
        "--layer",
        action="append",
        choices=(*LAYERS, *OPTIONAL_LAYERS, "echo"),
        help="channel layer(s) to measure (repeatable; default: "
        + ", ".join(LAYERS)
        + "); the echo baseline always runs unless --no-echo",
    )
    parser.add_argument(
        "--server-patch",
        action="append",
        default=[],
        choices=sorted(SERVER_PATCHES),
        help="experiment: apply this change to the relay servers (repeatable; see SERVER_PATCHES)",
    )
    parser.add_argument("--no-echo", action="store_true", help="skip the echo baseline")
    parser.add_argument("--no-doc", action="store_true", help=f"only print; do not update {DOC.name}")
    args = parser.parse_args()
    if args.connections < 2 or args.connections % 2 or args.seconds < 1 or args.institutions < 1:
        parser.error("--connections must be an even number ≥ 2; --seconds and --institutions ≥ 1")
    layers = args.layer or list(LAYERS)
    variants = ([] if args.no_echo else ["echo"]) + [
        layer for layer in (*LAYERS, *OPTIONAL_LAYERS) if layer in layers
    ]
    command = (
        f"DJANGO_SETTINGS_MODULE={os.environ['DJANGO_SETTINGS_MODULE']} DATABASE_URL=… REDIS_URL=… "
        ".venv/bin/python bench/ws_relay.py"
    )
    for flag, value, default in (
        ("--connections", args.connections, 1000),
        ("--seconds", args.seconds, 60),
        ("--institutions", args.institutions, 10),
    ):
        if value != default:
            command += f" {flag} {value}"
    if args.layer:
        command += "".join(f" --layer {layer}" for layer in args.layer)
    command += "".join(f" --server-patch {name}" for name in args.server_patch)
    if args.no_echo:
        command += " --no-echo"

    token = secrets.token_hex(3)
    made: list[str] = []
    results: list[Result] = []
    log_dir = Path(tempfile.mkdtemp(prefix="ws-relay-"))
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    try:
        with sigterm_as_interrupt(), more_open_files(args.connections * 2 + 256):
            began = time.monotonic()
            print(f"Making {args.institutions} institutions and {args.connections // 2} rooms …", flush=True)
            endpoints = build_scene(
                token=token, institutions=args.institutions, connections=args.connections, made=made
            )
            connection.close()  # the servers have their own; this one would only idle
            print(f"Scene ready in {time.monotonic() - began:.1f} s.", flush=True)
            for variant in variants:
                results.append(
                    asyncio.run(measure(variant, endpoints, args.seconds, log_dir, made, args.server_patch))
                )
            host = machine()
    except KeyboardInterrupt:
        print("\nInterrupted: cleaning up.", file=sys.stderr)
        return 130
    finally:
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            for subdomain in made:
                drop_institution(subdomain)
            if made:
                print(f"Dropped {len(made)} institutions (institution, domain and schema).")
                print(f"Deleted {forget_redis_keys(token)} Redis keys of theirs.")
        finally:
            signal.signal(signal.SIGTERM, previous)

    print()
    print(latency_table(results))
    print()
    print(resource_table(results))
    print(f"\nServer logs: {log_dir}")
    if not args.no_doc:
        write_section("ws_relay", section(command, results, host, loadavg, args.server_patch))
        print(f"Wrote the results to {DOC.relative_to(REPO_ROOT)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
