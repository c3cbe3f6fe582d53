"""``make run``: the whole of PeerLearn on one machine, in one terminal.

1. Start the embedded Postgres/Redis (unless ``DATABASE_URL``/``REDIS_URL``
   are set, in the environment or in ``.env``).
2. ``manage.py migrate_schemas --noinput`` and ``manage.py seed_demo``.
3. Run daphne (HTTP + WebSockets), a Celery worker and Celery beat, with their
   output prefixed ``web |``, ``worker |``, ``beat |``.

Ctrl-C or SIGTERM stops the three processes (SIGTERM, then SIGKILL after a
grace period) and then the embedded services.  If one of them exits on its
own, everything is stopped and this script exits non-zero naming it.

Environment: ``PORT`` (default 8000), ``PLATFORM_DOMAIN`` (default
``localhost``; only used to print the URLs).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

try:
    from scripts.services import (
        REPO_ROOT,
        configured_value,
        embedded_services,
        resolve_data_dir,
    )
except ImportError:  # run as `python scripts/run.py`: scripts/ is on sys.path
    from services import (
        REPO_ROOT,
        configured_value,
        embedded_services,
        resolve_data_dir,
    )

SETTINGS_MODULE = "config.settings.dev"
ASGI_APP = "config.asgi:application"
DATA_DIR = ".data"
GRACE_SECONDS = 8

DEMO_PASSWORD = "peerlearn-demo"
# (site, role, email); "platform" is the staff admin, the others are
# institution subdomains created by `manage.py seed_demo`.
DEMO_LOGINS: tuple[tuple[str, str, str], ...] = (
    ("platform", "platform staff", "staff@peerlearn.localhost"),
    ("northwind", "admin", "admin@northwind.edu"),
    ("northwind", "mentor", "ada@northwind.edu"),
    ("northwind", "learner", "sam@northwind.edu"),
    ("lambda", "admin", "admin@lambda.dev"),
    ("lambda", "mentor", "grace@lambda.dev"),
    ("lambda", "learner", "lin@lambda.dev"),
)
INSTITUTIONS = (("northwind", "Northwind University"), ("lambda", "Lambda Bootcamp"))

_COLORS = {"web": "36", "worker": "35", "beat": "33"}
_print_lock = threading.Lock()


class _StopRequest:
    """Set by SIGINT/SIGTERM/SIGHUP; the loops below poll it."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def handler(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


STOP = _StopRequest()


def say(message: str) -> None:
    with _print_lock:
        print(f"run    | {message}", flush=True)


def banner(port: int, domain: str) -> str:
    def url(sub: str = "", path: str = "") -> str:
        host = f"{sub}.{domain}" if sub else domain
        return f"http://{host}:{port}{path}"

    lines = [
        "",
        "=" * 72,
        " PeerLearn is running. Press Ctrl-C to stop.",
        "",
        f"  {'Platform site':<22}{url(path='/')}",
        f"  {'Staff admin':<22}{url(path='/admin/')}",
    ]
    for sub, name in INSTITUTIONS:
        lines.append(f"  {name:<22}{url(sub, '/')}")
    api_docs = url(INSTITUTIONS[0][0], "/api/docs/")
    lines.append(f"  {'API docs (any school)':<22}{api_docs}")
    lines += ["", f" Demo logins (password: {DEMO_PASSWORD})"]
    for site, role, email in DEMO_LOGINS:
        where = url(path="/admin/") if site == "platform" else url(site, "/")
        lines.append(f"  {role:<15} {email:<27} {where}")
    lines += ["=" * 72, ""]
    return "\n".join(lines)


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not STOP:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Own process group: Ctrl-C goes to this script only, which then
            # shuts the children down in order; killpg also reaches Celery's
            # pool processes.
            process_group=0,
        )
        color = _COLORS.get(name) if sys.stdout.isatty() else None
        label = f"{name:<6} |"
        self.prefix = f"\033[{color}m{label}\033[0m " if color else f"{label} "
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with _print_lock:
                try:
                    sys.stdout.write(f"{self.prefix}{line}\n")
                    sys.stdout.flush()
                except (OSError, ValueError):
                    pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def stop_children(children: list[Child]) -> None:
    running = [c for c in children if c.alive()]
    if running:
        say("stopping " + ", ".join(c.name for c in running) + " ...")
    for child in running:
        child.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for child in running:
        try:
            child.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{child.name} did not stop within {GRACE_SECONDS}s; killing it")
    for child in children:
        child.kill()  # also reaps leftovers in the process group (pool workers)
        child.proc.wait()
        child.reader.join(timeout=2)


def manage(env: dict[str, str], *args: str) -> bool:
    """Run a management command; False if it failed or a stop was requested."""
    say("manage.py " + " ".join(args))
    proc = subprocess.Popen([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env)
    while True:
        try:
            code = proc.wait(timeout=0.3)
            break
        except subprocess.TimeoutExpired:
            if STOP:  # Ctrl-C already reached it via the terminal; SIGTERM may not have
                proc.terminate()
                try:
                    code = proc.wait(GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
                break
    if STOP:
        return False
    if code != 0:
        say(f"manage.py {' '.join(args)} failed (exit code {code})")
        return False
    return True


def supervise(env: dict[str, str], port: int, domain: str, data_dir: Path) -> int:
    py = sys.executable
    celery = [py, "-m", "celery", "-A", "config"]
    schedule = str(data_dir / "celerybeat-schedule")
    commands = {
        "web": [py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), ASGI_APP],
        "worker": [*celery, "worker", "-l", "info", "--concurrency=2"],
        "beat": [*celery, "beat", "-l", "info", "--schedule", schedule],
    }
    children: list[Child] = []
    died: str | None = None
    try:
        for name, argv in commands.items():
            if STOP:
                break
            children.append(Child(name, argv, env))
        if children and wait_for_port(port, children[0].proc):
            with _print_lock:
                print(banner(port, domain), flush=True)
        while not STOP and died is None:
            for child in children:
                code = child.proc.poll()
                if code is not None:
                    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                    died = f"{child.name} exited unexpectedly ({how})"
                    break
            else:
                time.sleep(0.3)
    finally:
        if died:
            say(f"{died}; stopping everything")
        elif STOP:
            say(f"received {STOP.name}")
        stop_children(children)
    if died:
        say(f"stopped because {died}")
        return 1
    return 0


def main() -> int:
    port = int(os.environ.get("PORT") or 8000)
    domain = configured_value("PLATFORM_DOMAIN") or "localhost"
    data_dir = resolve_data_dir(DATA_DIR)

    if not (REPO_ROOT / "manage.py").is_file():
        say(f"no manage.py in {REPO_ROOT}")
        return 1
    if port_in_use(port):
        say(f"port {port} on 127.0.0.1 is in use; stop that process or set PORT")
        return 1

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, STOP.handler)

    with embedded_services(DATA_DIR) as service_env:
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **service_env,
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "PYTHONUNBUFFERED": "1",
        }
        ok = not STOP and manage(env, "migrate_schemas", "--noinput") and manage(env, "seed_demo")
        code = supervise(env, port, domain, data_dir) if ok else 1
    if STOP:
        say(f"stopped ({STOP.name})")
        return 0 if STOP.signum in (signal.SIGINT, signal.SIGTERM) else 128 + STOP.signum
    return code


if __name__ == "__main__":
    sys.exit(main())
