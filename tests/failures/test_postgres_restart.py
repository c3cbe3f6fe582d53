"""Postgres restarts under load: the app recovers by itself (the pool replaces dead connections),
and a request caught in the restart gets a 503 page, never a traceback or a 500."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import tenant_context

from shared.core.testing import drop_institution, signup_for
from tenants.services import institution_provision
from tests.conftest import RunningServer

from .conftest import PrivatePostgres, app_env, http_request, start_daphne, stop_process, wait_for

pytestmark = pytest.mark.failures

CLIENTS = 4
PATHS = ("/api/v1/me/", "/mentors/", "/api/v1/mentors/")


def _libpq_env(settings_dict: dict) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "PGHOST": settings_dict.get("HOST") or "",
        "PGPORT": str(settings_dict.get("PORT") or "5432"),
        "PGUSER": settings_dict.get("USER") or "",
        "PGPASSWORD": settings_dict.get("PASSWORD") or "",
    }


@pytest.fixture
def copied_site(
    test_database, django_db_blocker, private_postgres: PrivatePostgres, tmp_path
) -> Iterator[dict]:
    """The test database, with an institution, a mentor and a learner's API token, copied into the
    private cluster (pg_dump | pg_restore); the institution is removed from the test database."""
    from rest_framework.authtoken.models import Token

    from tenant_apps.sessions.tests.factories import make_learner, make_mentor

    with django_db_blocker.unblock():
        institution = institution_provision(
            signup=signup_for(f"db-restart-{secrets.token_hex(3)}")
        ).institution
        try:
            make_mentor(institution, email="mira@mentor.example", full_name="Mira Mentor")
            learner = make_learner(institution, email="leo@learner.example")
            with tenant_context(institution):
                token = Token.objects.create(user=learner).key
            connection.set_schema_to_public()
            dump = tmp_path / "site.dump"
            source = _libpq_env(test_database)
            subprocess.run(
                ["pg_dump", "--format=custom", "--no-owner", f"--file={dump}", test_database["NAME"]],
                env=source,
                check=True,
                capture_output=True,
            )
        finally:
            connection.close()
            connection.set_schema_to_public()
            drop_institution(institution)
            connection.set_schema_to_public()
    target = {**_libpq_env({"HOST": "127.0.0.1", "PORT": private_postgres.port, "USER": "postgres"})}
    subprocess.run(["createdb", "peerlearn"], env=target, check=True, capture_output=True)
    restored = subprocess.run(
        ["pg_restore", "--no-owner", "--dbname=peerlearn", str(dump)],
        env=target,
        capture_output=True,
        check=False,
    )
    assert restored.returncode == 0, restored.stderr.decode()[-2000:]
    yield {"host": f"{institution.slug}.{settings.PLATFORM_DOMAIN}", "token": token}


@dataclass
class Outcome:
    started: float
    finished: float
    path: str
    status: int
    body: str


def hammer(server: RunningServer, host: str, token: str, stop: threading.Event, out: list[Outcome]) -> None:
    """Requests one after another until `stop` is set, each outcome recorded."""
    index = 0
    while not stop.is_set():
        path = PATHS[index % len(PATHS)]
        index += 1
        started = time.monotonic()
        try:
            response = http_request(
                server, host, path, headers={"Authorization": f"Token {token}"}, timeout=30
            )
            status, body = response.status, response.text
        except OSError as error:
            status, body = 0, repr(error)
        out.append(Outcome(started, time.monotonic(), path, status, body[:300]))


def test_the_app_recovers_from_a_postgres_restart_by_itself(
    copied_site, private_postgres: PrivatePostgres, tmp_path
):
    env = app_env(
        database_url=private_postgres.database_url("peerlearn"),
        redis_url=settings.REDIS_URL,
    )
    server = start_daphne(env, tmp_path / "daphne.log")
    host, token = copied_site["host"], copied_site["token"]
    outcomes: list[Outcome] = []
    stop = threading.Event()
    clients = [
        threading.Thread(target=hammer, args=(server, host, token, stop, outcomes), daemon=True)
        for _ in range(CLIENTS)
    ]
    try:
        for client in clients:
            client.start()
        # The pool is warm: the clients have had answers (two rounds' worth) before the restart.
        wait_for(lambda: len(outcomes) >= 2 * CLIENTS, 30, "answers before the restart")
        restart_began = time.monotonic()
        private_postgres.restart()
        restart_ended = time.monotonic()
        # Every client has had several answers to requests it sent after the restart ended.
        wait_for(
            lambda: sum(1 for o in list(outcomes) if o.started > restart_ended) >= 3 * CLIENTS,
            30,
            "answers after the restart",
        )
        stop.set()
        for client in clients:
            client.join(30)

        before = [o for o in outcomes if o.finished < restart_began]
        during = [o for o in outcomes if o.started <= restart_ended and o.finished >= restart_began]
        after = [o for o in outcomes if o.started > restart_ended]
        failed = [o for o in outcomes if o.status != 200]
        summary = {
            "requests": len(outcomes),
            "before": len(before),
            "in_flight_or_during": len(during),
            "after": len(after),
            "failed": len(failed),
            "restart_seconds": round(restart_ended - restart_began, 2),
            "statuses": sorted({o.status for o in outcomes}),
        }
        print("postgres restart:", json.dumps(summary))
        assert before and all(o.status == 200 for o in before), summary
        # Nothing after the restart fails: no app restart, no stale connection handed out.
        assert after and all(o.status == 200 for o in after), (
            summary,
            [vars(o) for o in after if o.status != 200],
        )
        # What failed was caught in the restart, and got a 503 that says so (no 500, no traceback).
        assert all(o in during for o in failed), summary
        for outcome in failed:
            assert outcome.status == 503, vars(outcome)
            assert "Traceback" not in outcome.body
        assert len(failed) <= CLIENTS, summary

        # A restart while nobody asks: the pool still holds the old server's connections, and
        # tests each as it lends it out, so not one request fails afterwards.
        private_postgres.restart()
        statuses = [
            http_request(
                server, host, PATHS[i % len(PATHS)], headers={"Authorization": f"Token {token}"}
            ).status
            for i in range(3 * len(PATHS))
        ]
        print("postgres restart while idle, then:", statuses)
        assert statuses == [200] * len(statuses), statuses
    finally:
        stop.set()
        stop_process(server.process)
