"""Private servers that failure tests may stop, restart or kill, and app servers pointed at them.

The shared Postgres (5432) and Redis (6379) are never touched: each failure test gets its own
`redis-server` or Postgres cluster on a free port, in a temporary directory, stopped at the end.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import DAPHNE, REPO_ROOT, SERVER_START_TIMEOUT, RunningServer, _free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `predicate` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# --- Redis ---------------------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    """A `redis-server` of our own: no persistence, on 127.0.0.1:<port>."""

    directory: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def answers(self) -> bool:
        # No retries: redis-py's default backs off for seconds before it says a server is down.
        client = redis.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.answers, 10, f"redis-server on port {self.port}")

    def stop(self) -> None:
        """Stop it hard (SIGKILL): clients see their connections reset, as when a server dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        wait_for(lambda: not self.answers(), 5, "redis-server to stop")


@pytest.fixture
def private_redis(tmp_path_factory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(directory=tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)


# --- Postgres ------------------------------------------------------------------------------------


def _as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the `postgres` user."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PrivatePostgres:
    """A Postgres cluster of our own (Debian's binaries), trust authentication, 127.0.0.1:<port>."""

    directory: Path
    port: int = field(default_factory=_free_port)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _pg(self, *command: str) -> None:
        result = subprocess.run(
            [*_as_postgres_user(), *command], capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            log = self.directory / "postgres.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise AssertionError(f"{command[0]} failed: {result.stdout}{result.stderr}\n{tail}")

    def init(self) -> None:
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.directory, postgres.pw_uid, postgres.pw_gid)
        self._pg(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "postgres.log"),
            "-o",
            options,
            "-w",
            action,
            *extra,
        )

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        """Stop fast (every connection is cut, in-flight transactions roll back) and start again."""
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._ctl("stop", "-m", "immediate")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Not under pytest's temporary directory: that one is private to root, and the server runs as
    # the postgres user.
    directory = Path(tempfile.mkdtemp(prefix="peerlearn-pg-"))
    server = PrivatePostgres(directory=directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(AssertionError):  # already stopped
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


# --- App servers ---------------------------------------------------------------------------------


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/healthz", headers={"Host": "localhost"})
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    return response.status == 200


def app_env(*, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of an app process (web or worker) on these servers."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "PLATFORM_DOMAIN": "localhost",
        "SITE_SCHEME": "http",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def start_daphne(env: dict[str, str], log_path: Path) -> RunningServer:
    """A daphne process serving the app with `env`; waits until it answers /healthz."""
    port = _free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            cwd=REPO_ROOT,
            env={**env, "SITE_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not _answers(port):
        if process.poll() is not None:
            pytest.fail(f"daphne exited with code {process.returncode}:\n{server.log()}", pytrace=False)
        if time.monotonic() > deadline:
            stop_process(process)
            pytest.fail(f"daphne did not answer in time:\n{server.log()}", pytrace=False)
        time.sleep(0.1)
    return server


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def http_request(
    server: RunningServer,
    host: str,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15,
) -> Response:
    """One request to `server` for `host` (Python does not resolve *.localhost: Host header)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": f"{host}:{server.port}", **(headers or {})})
        response = conn.getresponse()
        return Response(response.status, response.read(), {k.lower(): v for k, v in response.getheaders()})
    finally:
        conn.close()
