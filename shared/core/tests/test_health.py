"""/healthz and /readyz on every host, and readiness that follows Postgres and Redis going away and back."""

import contextlib
import socket
import threading
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from shared.core.health import check_database, check_redis, database_params, readiness
from shared.core.testing import HostClient, host_of, make_user, sign_in

# What production exempts from the HTTPS redirect (config/settings/production.py; test_production.py
# checks the production settings carry the same).
PRODUCTION_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Forwarder:
    """A TCP hop on 127.0.0.1 to a real service, which a test can cut (stop) and restore (start)."""

    def __init__(self, target: tuple[str, int] | str) -> None:
        self.target = target  # (host, port), or the path of a unix socket
        self.port = closed_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        listener.settimeout(0.1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            return upstream
        return socket.create_connection(self.target)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = self._connect_upstream()
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def postgres_hop(db):
    params = database_params()
    host = params.get("host") or "/var/run/postgresql"
    port = int(params.get("port") or 5432)
    hop = Forwarder(f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port))
    hop.start()
    yield hop, {**params, "host": "127.0.0.1", "port": hop.port}
    hop.stop()


@pytest.fixture
def redis_hop():
    url = urlsplit(settings.REDIS_URL)
    if url.scheme not in {"redis", "rediss"}:
        pytest.fail(f"these tests forward Redis over TCP; REDIS_URL is {settings.REDIS_URL}")
    hop = Forwarder((url.hostname or "127.0.0.1", url.port or 6379))
    hop.start()
    credentials = url.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{hop.port}" if credentials else f"127.0.0.1:{hop.port}"
    yield hop, url._replace(netloc=netloc).geturl()
    hop.stop()


def hosts(institution) -> list[str]:
    """The platform, an institution, a host nobody serves and the load balancer's probe by IP."""
    return [settings.PLATFORM_DOMAIN, host_of(institution), "nobody.example", "10.0.3.7", "10.0.3.7:8000"]


def test_healthz_answers_ok_on_every_host_without_the_database(
    institution_a, django_assert_num_queries
) -> None:
    for host in hosts(institution_a):
        with django_assert_num_queries(0):
            response = HostClient(host).get("/healthz")
        assert response.status_code == 200, host
        assert response.content == b"ok"
        assert response["Content-Type"].startswith("text/plain")
        assert "no-cache" in response["Cache-Control"]


def test_readyz_reports_both_services_on_every_host(institution_a) -> None:
    for host in hosts(institution_a):
        response = HostClient(host).get("/readyz")
        assert response.status_code == 200, host
        body = response.json()
        assert body["status"] == "ok"
        assert body["checks"]["database"]["ok"] is True
        assert body["checks"]["redis"]["ok"] is True
        assert "failed" not in body


def test_readyz_is_503_naming_redis_while_redis_is_unreachable_and_recovers(institution_a) -> None:
    client = HostClient("10.0.3.7")
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/12"):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["redis"]
    assert body["checks"]["database"]["ok"] is True
    assert "ConnectionError" in body["checks"]["redis"]["error"]
    assert client.get("/readyz").status_code == 200


def test_readiness_follows_postgres_going_away_and_coming_back(postgres_hop) -> None:
    hop, params = postgres_hop
    assert check_database(params).ok

    hop.stop()
    ready, body = readiness(database=params)
    assert not ready
    assert body["failed"] == ["database"]
    assert body["checks"]["database"]["error"].startswith("OperationalError")
    assert body["checks"]["redis"]["ok"] is True

    hop.start()
    ready, body = readiness(database=params)
    assert ready, body


def test_readiness_follows_redis_going_away_and_coming_back(redis_hop, db) -> None:
    hop, url = redis_hop
    assert check_redis(url).ok

    hop.stop()
    ready, body = readiness(redis_url=url)
    assert not ready
    assert body["failed"] == ["redis"]
    assert body["checks"]["database"]["ok"] is True

    hop.start()
    ready, body = readiness(redis_url=url)
    assert ready, body


def test_a_database_at_a_closed_port_fails_fast(db) -> None:
    params = {**database_params(), "host": "127.0.0.1", "port": closed_port()}
    result = check_database(params)
    assert not result.ok
    assert result.duration_ms < 3000
    assert connection.is_usable()  # the request's own connection is untouched


def test_probes_over_plain_http_are_not_redirected_to_https(institution_a) -> None:
    with override_settings(SECURE_SSL_REDIRECT=True, SECURE_REDIRECT_EXEMPT=PRODUCTION_REDIRECT_EXEMPT):
        client = HostClient("10.0.3.7")
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        page = HostClient(host_of(institution_a)).get("/accounts/login/")
        assert page.status_code == 301
        assert page["Location"].startswith("https://")


def test_a_probe_on_an_institutions_site_does_not_sign_its_visitor_out(institution_a) -> None:
    person = make_user(institution_a)
    client = HostClient(host_of(institution_a))
    sign_in(client, person.email)
    session_cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200
        # No Set-Cookie that would expire the session.
        assert settings.SESSION_COOKIE_NAME not in response.cookies, path
    assert client.cookies[settings.SESSION_COOKIE_NAME].value == session_cookie
    assert client.get("/accounts/profile/").status_code == 200
