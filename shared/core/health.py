"""Health endpoints for the load balancer and the orchestrator, on every host (docs/deploy.md).

- ``/healthz``: liveness. The process answers; nothing else is asked (no database, no Redis).
- ``/readyz``: readiness. ``SELECT 1`` on Postgres and ``PING`` to Redis, each on a fresh connection
  with short timeouts; 200 when both answer, 503 naming what failed.

Load balancers probe by IP address, so the institution middleware lets these two paths through
before it looks the host up (tenants/middleware.py), and SECURE_SSL_REDIRECT exempts them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
# Seconds. libpq waits at least 2 s for a connection whatever it is told.
CHECK_TIMEOUT = 2.0

# Keys of a Django database's OPTIONS that are not libpq connection parameters.
_NOT_LIBPQ_OPTIONS = {"pool", "server_side_binding", "assume_role", "isolation_level", "prepare_threshold"}


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    duration_ms: float
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "duration_ms": self.duration_ms}
        if self.error:
            body["error"] = self.error
        return body


def _timed(check: Callable[[], None]) -> CheckResult:
    started = time.perf_counter()
    try:
        check()
    except Exception as error:  # any failure means "not ready"; its class names it
        ok, message = False, f"{error.__class__.__name__}: {str(error).strip()[:200]}"
    else:
        ok, message = True, ""
    return CheckResult(ok=ok, duration_ms=round((time.perf_counter() - started) * 1000, 1), error=message)


def database_params(settings_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """libpq parameters of a Django database (default: the ``default`` alias' current settings)."""
    settings_dict = settings_dict if settings_dict is not None else connections["default"].settings_dict
    params: dict[str, Any] = {
        key: value
        for key, value in (settings_dict.get("OPTIONS") or {}).items()
        if key not in _NOT_LIBPQ_OPTIONS
    }
    params["dbname"] = settings_dict.get("NAME") or "postgres"
    for key, name in (("USER", "user"), ("PASSWORD", "password"), ("HOST", "host"), ("PORT", "port")):
        if settings_dict.get(key):
            params[name] = settings_dict[key]
    return params


def check_database(params: dict[str, Any] | None = None, timeout: float = CHECK_TIMEOUT) -> CheckResult:
    """``SELECT 1`` over a new connection (the pool's would wait for a free slot, not fail fast)."""
    params = dict(params if params is not None else database_params())
    params["connect_timeout"] = max(2, round(timeout))
    statement_timeout = f"-c statement_timeout={int(timeout * 1000)}"
    params["options"] = f"{params.get('options', '')} {statement_timeout}".strip()

    def select_one() -> None:
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()

    return _timed(select_one)


def check_redis(url: str | None = None, timeout: float = CHECK_TIMEOUT) -> CheckResult:
    """``PING`` over a new connection to REDIS_URL (cache, channel layer and Celery broker)."""
    url = url or settings.REDIS_URL

    def ping() -> None:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()

    return _timed(ping)


def readiness(
    database: dict[str, Any] | None = None, redis_url: str | None = None
) -> tuple[bool, dict[str, Any]]:
    """Whether this process can serve: (ready, the JSON body of /readyz)."""
    checks = {"database": check_database(database), "redis": check_redis(redis_url)}
    failed = [name for name, result in checks.items() if not result.ok]
    body: dict[str, Any] = {
        "status": "unavailable" if failed else "ok",
        "checks": {name: result.as_json() for name, result in checks.items()},
    }
    if failed:
        body["failed"] = failed
    return not failed, body


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain; charset=utf-8")


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503)
